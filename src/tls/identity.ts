import { createPrivateKey, createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { describeError, MeshletError } from '../errors.ts';
import { parseSpiffeId } from './spiffe.ts';

// A workload identity: the SPIFFE certificate chain, its key and the trust anchors, read
// from a directory laid out like a Kubernetes TLS secret (tls.crt, tls.key, ca.crt).
// Everything that could make a handshake fail later is checked here, at load time, so
// a bad file is reported once, by name, instead of as a stream of failed connections.

export const IDENTITY_FILES = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;

export interface Identity {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly leaf: X509Certificate;
  /** Certificates of tls.crt after the leaf (intermediates). */
  readonly intermediates: readonly X509Certificate[];
  readonly anchors: readonly X509Certificate[];
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Ready for tls.connect; built once per identity, not per connection. */
  readonly secureContext: tls.SecureContext;
  /** The PEM texts, for tls.createServer, which builds its own context from them. */
  readonly pem: { readonly cert: string; readonly key: string; readonly ca: string };
  /** Hash of the three files' bytes, to tell a real change from a touch. */
  readonly fingerprint: string;
}

function identityError(file: string, reason: string): MeshletError {
  return new MeshletError('MESHLET_ERR_IDENTITY', `${file}: ${reason}`);
}

function readPem(dir: string, name: string): string {
  const file = path.join(dir, name);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw identityError(file, `cannot read (${(err as NodeJS.ErrnoException).code ?? describeError(err)})`);
  }
}

// Each block is parsed by Node's X509Certificate; the regex only finds where the
// blocks of a bundle start and end (loading a PEM library for that would cost the
// proxy tens of MB of memory).
const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function parseCertificates(file: string, pem: string): X509Certificate[] {
  const blocks = pem.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) throw identityError(file, 'holds no PEM CERTIFICATE block');
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw identityError(file, `certificate #${i + 1} cannot be parsed (${describeError(err)})`);
    }
  });
}

/** The URI SANs of a certificate (Node renders SANs as "URI:spiffe://…, DNS:…"). */
export function uriSans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

/** The single SPIFFE ID in a certificate's URI SANs, or undefined if there is not exactly one. */
export function spiffeIdOf(cert: X509Certificate): string | undefined {
  const uris = uriSans(cert).filter((u) => u.startsWith('spiffe://'));
  return uris.length === 1 ? uris[0] : undefined;
}

/** Walks leaf → intermediates → an anchor, checking names and signatures at each step. */
function anchoredIn(leaf: X509Certificate, intermediates: readonly X509Certificate[], anchors: readonly X509Certificate[]): boolean {
  let current = leaf;
  for (let depth = 0; depth <= intermediates.length; depth++) {
    if (anchors.some((a) => current.checkIssued(a) && current.verify(a.publicKey))) return true;
    const next = intermediates.find((c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey));
    if (!next) return false;
    current = next;
  }
  return false;
}

/** Loads and checks an identity; throws a MeshletError naming the file and the reason. */
export function loadIdentity(dir: string, now: Date = new Date()): Identity {
  const certFile = path.join(dir, IDENTITY_FILES.cert);
  const keyFile = path.join(dir, IDENTITY_FILES.key);
  const caFile = path.join(dir, IDENTITY_FILES.ca);
  const certPem = readPem(dir, IDENTITY_FILES.cert);
  const keyPem = readPem(dir, IDENTITY_FILES.key);
  const caPem = readPem(dir, IDENTITY_FILES.ca);

  const [leaf, ...intermediates] = parseCertificates(certFile, certPem) as [X509Certificate, ...X509Certificate[]];
  const anchors = parseCertificates(caFile, caPem);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw identityError(keyFile, `not a private key (${describeError(err)})`);
  }
  if (!leaf.checkPrivateKey(key)) throw identityError(keyFile, `does not match the certificate in ${IDENTITY_FILES.cert}`);

  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now < notBefore) throw identityError(certFile, `not valid yet (valid from ${notBefore.toISOString()})`);
  if (now > notAfter) throw identityError(certFile, `expired at ${notAfter.toISOString()}`);

  const uris = uriSans(leaf);
  const spiffeUris = uris.filter((u) => u.startsWith('spiffe://'));
  if (spiffeUris.length !== 1) {
    throw identityError(certFile, spiffeUris.length === 0 ? 'has no SPIFFE URI SAN' : `has ${spiffeUris.length} SPIFFE URI SANs (an SVID has exactly one)`);
  }
  let trustDomain: string;
  try {
    trustDomain = parseSpiffeId(spiffeUris[0]!).trustDomain;
  } catch (err) {
    throw identityError(certFile, `URI SAN ${spiffeUris[0]} is not a valid SPIFFE ID: ${describeError(err)}`);
  }
  if (!anchoredIn(leaf, intermediates, anchors)) {
    throw identityError(certFile, `chain is not anchored in ${IDENTITY_FILES.ca} (issuer "${leaf.issuer.replaceAll('\n', ', ')}" not found or signature invalid)`);
  }

  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ cert: certPem, key: keyPem, ca: caPem, minVersion: 'TLSv1.3' });
  } catch (err) {
    throw identityError(dir, `unusable for TLS (${describeError(err)})`);
  }
  return {
    spiffeId: spiffeUris[0]!,
    trustDomain,
    leaf,
    intermediates,
    anchors,
    serial: leaf.serialNumber,
    notBefore,
    notAfter,
    secureContext,
    pem: { cert: certPem, key: keyPem, ca: caPem },
    fingerprint: createHash('sha256').update(certPem).update(keyPem).update(caPem).digest('hex'),
  };
}

/** Share of the certificate's lifetime still ahead at `now` (0 when expired). */
export function remainingLifetime(identity: Pick<Identity, 'notBefore' | 'notAfter'>, now: Date = new Date()): number {
  const total = identity.notAfter.getTime() - identity.notBefore.getTime();
  return total <= 0 ? 0 : Math.max(0, (identity.notAfter.getTime() - now.getTime()) / total);
}
