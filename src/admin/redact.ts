// /config_dump shows the effective configuration, but never a secret: a field whose name
// says it holds one (a password, a token, key material, authorization headers) is
// replaced, wherever it is in the tree. Paths to files are not secrets (identity.dir is
// shown); the files' contents never enter the configuration.

export const REDACTED = '[redacted]';

const SECRET_NAME = /(secret|password|passwd|token|credential|authorization|api_?key|private_?key|^key$|pem$|headers$)/i;

/** A deep copy of `value` with every secret-named field's value replaced by REDACTED. */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = SECRET_NAME.test(key) && field !== undefined && field !== null ? REDACTED : redact(field);
  }
  return out;
}
