import { decodePermittedUriHosts, encodePermittedUriHosts, OID_NAME_CONSTRAINTS } from './name-constraints.ts';
import { generateKeyPair, signingAlgorithm, type KeyType } from './keys.ts';
import { x509 } from './x509.ts';

// The certificates themselves, by the book (RFC 5280 and the SPIFFE X509-SVID
// standard). These functions build what they are asked to build; the policy (which
// trust domain a CA may sign for, whether it has expired) is checked by the callers
// in operations.ts, so tests can also build what policy would refuse.
//
//   root          CA:TRUE pathlen:1 (critical); keyCertSign, cRLSign (critical); SKI;
//                 nameConstraints permitted URI host <td> (critical); URI SAN spiffe://<td>
//   intermediate  same, pathlen:0, plus AKI = root's SKI
//   workload      CA:FALSE (critical); digitalSignature (+ keyEncipherment for RSA)
//                 (critical); EKU serverAuth, clientAuth; SKI; AKI = issuer's SKI;
//                 empty subject, so the one URI SAN (the SPIFFE ID) is critical

/** notBefore is set this far in the past, so a peer whose clock is a little behind accepts a new certificate. */
export const BACKDATE_MS = 5 * 60_000;
/** The root may sign one level of intermediates; an intermediate signs only workloads. */
export const ROOT_PATH_LENGTH = 1;
export const INTERMEDIATE_PATH_LENGTH = 0;

export interface Signer {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
}

export interface Issued {
  readonly cert: x509.X509Certificate;
  readonly privateKey: CryptoKey;
  /** The requested lifetime reached past the issuer's notAfter and was cut to it. */
  readonly clamped: boolean;
}

export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly clamped: boolean;
}

/**
 * From `now - BACKDATE_MS` to `now + ttl`, never outside the issuer's own validity:
 * a certificate cannot usefully outlive the CA that signed it, so notAfter is clamped
 * to the issuer's notAfter (and the caller says so).
 */
export function validityWindow(now: Date, ttlMs: number, issuer?: x509.X509Certificate): Validity {
  let notBefore = new Date(now.getTime() - BACKDATE_MS);
  let notAfter = new Date(now.getTime() + ttlMs);
  let clamped = false;
  if (issuer !== undefined) {
    if (notBefore < issuer.notBefore) notBefore = issuer.notBefore;
    if (notAfter > issuer.notAfter) {
      notAfter = issuer.notAfter;
      clamped = true;
    }
  }
  return { notBefore, notAfter, clamped };
}

/** 16 random bytes, first byte in 0x40–0x7f: positive, fixed length, 126 bits of entropy. */
export function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}

function caName(kind: 'root' | 'intermediate', trustDomain: string): x509.JsonName {
  return [{ O: [trustDomain] }, { CN: [`meshlet ${kind} CA`] }];
}

function nameConstraints(trustDomain: string): x509.Extension {
  return new x509.Extension(OID_NAME_CONSTRAINTS, true, encodePermittedUriHosts([trustDomain]));
}

async function caExtensions(trustDomain: string, pathLength: number, publicKey: CryptoKey): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
    nameConstraints(trustDomain),
    // A signing certificate SHOULD itself be an SVID, with a path-less ID (X509-SVID 3.2).
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }], false),
  ];
}

export async function createRootCa(options: {
  trustDomain: string;
  ttlMs: number;
  keyType: KeyType;
  now: Date;
}): Promise<Issued> {
  const keys = await generateKeyPair(options.keyType);
  const { notBefore, notAfter } = validityWindow(options.now, options.ttlMs);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: caName('root', options.trustDomain),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: signingAlgorithm(keys.privateKey),
    extensions: await caExtensions(options.trustDomain, ROOT_PATH_LENGTH, keys.publicKey),
  });
  return { cert, privateKey: keys.privateKey, clamped: false };
}

export async function createIntermediateCa(options: {
  root: Signer;
  trustDomain: string;
  ttlMs: number;
  keyType: KeyType;
  now: Date;
}): Promise<Issued> {
  const keys = await generateKeyPair(options.keyType);
  const window = validityWindow(options.now, options.ttlMs, options.root.cert);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: caName('intermediate', options.trustDomain),
    issuer: options.root.cert.subjectName,
    notBefore: window.notBefore,
    notAfter: window.notAfter,
    publicKey: keys.publicKey,
    signingKey: options.root.key,
    signingAlgorithm: signingAlgorithm(options.root.key),
    extensions: [
      ...(await caExtensions(options.trustDomain, INTERMEDIATE_PATH_LENGTH, keys.publicKey)),
      new x509.AuthorityKeyIdentifierExtension(await keyIdentifier(options.root.cert)),
    ],
  });
  return { cert, privateKey: keys.privateKey, clamped: window.clamped };
}

/** A workload certificate (X509-SVID) for `spiffeId`, which the caller has validated. */
export async function issueWorkloadCertificate(options: {
  issuer: Signer;
  spiffeId: string;
  ttlMs: number;
  keyType: KeyType;
  now: Date;
}): Promise<Issued> {
  const keys = await generateKeyPair(options.keyType);
  const window = validityWindow(options.now, options.ttlMs, options.issuer.cert);
  const usages =
    options.keyType === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    // The SPIFFE ID is the identity; an empty subject makes that unambiguous, and RFC
    // 5280 4.2.1.6 then requires the SAN extension to be critical.
    subject: '',
    issuer: options.issuer.cert.subjectName,
    notBefore: window.notBefore,
    notAfter: window.notAfter,
    publicKey: keys.publicKey,
    signingKey: options.issuer.key,
    signingAlgorithm: signingAlgorithm(options.issuer.key),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usages, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(await keyIdentifier(options.issuer.cert)),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: options.spiffeId }], true),
    ],
  });
  return { cert, privateKey: keys.privateKey, clamped: window.clamped };
}

/** The certificate's SKI as written in it, else computed from its key (RFC 5280 method 1). */
export async function keyIdentifier(cert: x509.X509Certificate): Promise<string> {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return ski.keyId;
  return Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex');
}

/** The trust domains a CA certificate's URI name constraints permit (empty when it has none). */
export function permittedTrustDomains(cert: x509.X509Certificate): string[] {
  const extension = cert.getExtension(OID_NAME_CONSTRAINTS);
  return extension ? decodePermittedUriHosts(new Uint8Array(extension.value)) : [];
}

export interface CaProperties {
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  readonly canSignCertificates: boolean;
}

export function caProperties(cert: x509.X509Certificate): CaProperties {
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  return {
    isCa: basic?.ca === true,
    pathLength: basic?.pathLength,
    // No keyUsage extension at all means no restriction (RFC 5280 4.2.1.3).
    canSignCertificates: usage === null || (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0,
  };
}

/** Whether `cert` is signed by `issuer`'s key (signature only, no other check). */
export async function isSignedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false; // a key of another type cannot have made the signature
  }
}

export function certificatePem(certs: readonly x509.X509Certificate[]): string {
  return certs.map((c) => `${c.toString('pem').trim()}\n`).join('');
}
