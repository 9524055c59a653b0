import { MeshletError } from '../errors.ts';

// SPIFFE IDs (spiffe://trust-domain/path), checked against the SPIFFE-ID standard
// (spiffe/spiffe standards/SPIFFE-ID.md, sections 2.1–2.3). Strict on purpose: the
// same text is what a certificate carries and what authorization compares, so only
// the canonical form is accepted (lowercase scheme and trust domain, no percent
// encoding), as go-spiffe does. Every refusal says which rule was broken.

export interface SpiffeId {
  /** The whole ID, exactly as given (it is already canonical when it parses). */
  readonly id: string;
  /** The authority part, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** `''` for a trust domain's own ID, else `/seg/seg...`. */
  readonly path: string;
  /** Set when the path is exactly `/ns/NS/sa/SA` (the Kubernetes convention). */
  readonly namespace?: string;
  readonly serviceAccount?: string;
}

const PREFIX = 'spiffe://';
export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;
const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_CHAR = /^[a-zA-Z0-9._-]$/;

/** Parses a SPIFFE ID or throws MESHLET_ERR_SPIFFE_ID naming the broken rule. */
export function parseSpiffeId(text: string): SpiffeId {
  const fail = (reason: string) => new MeshletError('MESHLET_ERR_SPIFFE_ID', `invalid SPIFFE ID '${shorten(text)}': ${reason}`);
  if (text === '') throw fail('it is empty');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_SPIFFE_ID_BYTES) throw fail(`it is ${bytes} bytes long; the limit is ${MAX_SPIFFE_ID_BYTES}`);
  if (!text.startsWith(PREFIX)) {
    if (text.toLowerCase().startsWith(PREFIX)) throw fail("the scheme must be lowercase 'spiffe'");
    const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text)?.[1];
    if (scheme !== undefined && scheme.toLowerCase() !== 'spiffe') throw fail(`the scheme must be 'spiffe', not '${scheme}'`);
    throw fail("it must start with 'spiffe://' followed by the trust domain");
  }
  if (text.includes('?')) throw fail('a query (?...) is not allowed');
  if (text.includes('#')) throw fail('a fragment (#...) is not allowed');
  if (text.includes('%')) throw fail('percent-encoded characters are not allowed');

  const rest = text.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem !== undefined) throw fail(tdProblem);

  if (path !== '') {
    if (path.endsWith('/')) throw fail("the path must not end with '/'");
    const segments = path.slice(1).split('/');
    for (const segment of segments) {
      if (segment === '') throw fail("the path has an empty segment ('//')");
      if (segment === '.' || segment === '..') throw fail(`the path segment '${segment}' is not allowed (no '.' or '..' segments)`);
      const bad = [...segment].find((c) => !PATH_CHAR.test(c));
      if (bad !== undefined) {
        throw fail(`the path segment '${shorten(segment)}' has '${bad}'; only letters, digits, '.', '-' and '_' are allowed`);
      }
    }
    const [first, ns, third, sa] = segments;
    if (segments.length === 4 && first === 'ns' && third === 'sa' && ns !== undefined && sa !== undefined) {
      return { id: text, trustDomain, path, namespace: ns, serviceAccount: sa };
    }
  }
  return { id: text, trustDomain, path };
}

/**
 * Checks a bare trust domain name (as given to `--trust-domain`); throws
 * MESHLET_ERR_SPIFFE_ID with the reason when it is not one.
 */
export function parseTrustDomain(text: string): string {
  const problem = text.includes('://') ? "give the trust domain name alone, without a scheme (e.g. 'cluster.local')" : trustDomainProblem(text);
  if (problem !== undefined) throw new MeshletError('MESHLET_ERR_SPIFFE_ID', `invalid trust domain '${shorten(text)}': ${problem}`);
  return text;
}

/**
 * The Kubernetes namespace of an ID of the form spiffe://TD/ns/NS/sa/SA; undefined for
 * any other path, and for text that is not a valid SPIFFE ID (it names no namespace).
 */
export function namespaceOf(id: string | SpiffeId): string | undefined {
  if (typeof id !== 'string') return id.namespace;
  try {
    return parseSpiffeId(id).namespace;
  } catch {
    return undefined; // not a SPIFFE ID, so no namespace: the documented answer, not a hidden error
  }
}

/**
 * A workload's SPIFFE ID: a valid ID whose path is exactly /ns/NS/sa/SA, the form
 * authorization reads namespaces from (and Istio uses). Throws MESHLET_ERR_SPIFFE_ID
 * for anything else, saying which form is needed.
 */
export function parseWorkloadId(text: string): SpiffeId & { readonly namespace: string; readonly serviceAccount: string } {
  const id = parseSpiffeId(text);
  if (id.namespace !== undefined && id.serviceAccount !== undefined) return { ...id, namespace: id.namespace, serviceAccount: id.serviceAccount };
  const what = id.path === '' ? "is a trust domain's own ID, not a workload's" : `is not a workload ID (its path is ${id.path})`;
  throw new MeshletError(
    'MESHLET_ERR_SPIFFE_ID',
    `${shorten(text)} ${what}: use spiffe://${id.trustDomain}/ns/NAMESPACE/sa/SERVICE_ACCOUNT, the form authorization reads the namespace from`,
  );
}

function trustDomainProblem(td: string): string | undefined {
  if (td === '') return 'the trust domain is missing';
  if (td.includes('@')) return 'userinfo (user@) is not allowed in the trust domain';
  if (td.startsWith('[')) return 'an IPv6 address cannot be a trust domain';
  if (td.includes(':')) return 'a port is not allowed in the trust domain';
  if (Buffer.byteLength(td, 'utf8') > MAX_TRUST_DOMAIN_BYTES) return `the trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  if (td !== td.toLowerCase()) return `the trust domain '${shorten(td)}' must be lowercase`;
  const bad = [...td].find((c) => !TRUST_DOMAIN_CHAR.test(c));
  if (bad !== undefined) return `the trust domain '${shorten(td)}' has '${bad}'; only a-z, 0-9, '.', '-' and '_' are allowed`;
  return undefined;
}

/** Error messages quote the input; a 2 KiB ID would drown the reason. */
function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
