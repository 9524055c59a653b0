// /config_dump shows the effective configuration, but never a secret: a text field whose
// name says it holds one (a password, a token, key material, authorization headers) is
// replaced, wherever it is in the tree. Lists and maps are never secrets themselves
// (inbound.authorization holds rules); their fields are looked at one by one. Paths to files are not secrets (identity.dir is
// shown); the files' contents never enter the configuration.

export const REDACTED = '[redacted]';

const SECRET_NAME = /(secret|password|passwd|token|credential|authorization|api_?key|private_?key|^key$|pem$|headers$)/i;

/** A deep copy of `value` with every secret-named text or number field replaced by REDACTED. */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    const scalar = typeof field === 'string' || typeof field === 'number';
    out[key] = scalar && SECRET_NAME.test(key) ? REDACTED : redact(field);
  }
  return out;
}
