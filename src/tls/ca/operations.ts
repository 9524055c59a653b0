import path from 'node:path';
import { MeshletError } from '../../errors.ts';
import type { SpiffeId } from '../spiffe.ts';
import {
  caProperties,
  certificatePem,
  createIntermediateCa,
  createRootCa,
  isSignedBy,
  issueWorkloadCertificate,
  permittedTrustDomains,
  type Issued,
  type Signer,
} from './certificates.ts';
import { importSigningKey, privateKeyPem, type KeyType } from './keys.ts';
import {
  CA_CERT,
  CA_KEY,
  CERT_MODE,
  checkOutputDir,
  exists,
  KEY_MODE,
  readCertificate,
  readText,
  removeIfPresent,
  ROOT_CERT,
  TLS_CERT,
  TLS_KEY,
  writeFiles,
} from './store.ts';
import type { x509 } from './x509.ts';

// What `meshlet ca init` and `meshlet ca issue` do, with every policy check: a CA
// directory is read and checked whole (key matches certificate, chain to the root,
// validity, trust domain) before anything is generated or written.

export interface LoadedCa {
  readonly dir: string;
  readonly signer: Signer;
  /** The trust anchor: `root.crt`, or `ca.crt` itself for a root CA. */
  readonly root: x509.X509Certificate;
  /** What goes between a leaf and the root in tls.crt: [ca.crt] for an intermediate, [] for a root. */
  readonly intermediates: readonly x509.X509Certificate[];
  readonly trustDomain: string;
}

export interface Outcome {
  readonly dir: string;
  readonly files: readonly string[];
  readonly notAfter: Date;
  readonly clamped: boolean;
}

export async function loadCa(dir: string, now: Date): Promise<LoadedCa> {
  const certFile = path.join(dir, CA_CERT);
  const keyFile = path.join(dir, CA_KEY);
  const cert = readCertificate(dir, CA_CERT);
  const { key, spki } = await importSigningKey(readText(dir, CA_KEY), keyFile);
  if (!Buffer.from(cert.publicKey.rawData).equals(spki)) {
    throw caError(`${keyFile} does not match ${certFile} (the certificate is for another key)`);
  }
  const props = caProperties(cert);
  if (!props.isCa) throw caError(`${certFile} is not a CA certificate (no basicConstraints CA:TRUE)`);
  if (!props.canSignCertificates) throw caError(`${certFile} may not sign certificates (keyUsage lacks keyCertSign)`);
  checkCurrent(cert, certFile, now);

  let root = cert;
  const selfSigned = await cert.isSelfSigned();
  const rootFile = path.join(dir, ROOT_CERT);
  const rootCopy = exists(dir, ROOT_CERT) ? readCertificate(dir, ROOT_CERT) : undefined;
  if (rootCopy === undefined || sameCertificate(rootCopy, cert)) {
    // A root CA (a root.crt identical to ca.crt changes nothing).
    if (!selfSigned) {
      throw caError(
        rootCopy === undefined
          ? `${certFile} is an intermediate (not self-signed) but ${rootFile}, its root, is missing`
          : `${rootFile} is the same certificate as ${certFile}, not its root`,
      );
    }
  } else {
    root = rootCopy;
    if (!(await root.isSelfSigned())) throw caError(`${rootFile} is not a root (self-signed) certificate`);
    if (!caProperties(root).isCa) throw caError(`${rootFile} is not a CA certificate (no basicConstraints CA:TRUE)`);
    if (!(await isSignedBy(cert, root))) throw caError(`${certFile} is not signed by ${rootFile}`);
    checkCurrent(root, rootFile, now);
  }

  const domains = permittedTrustDomains(cert);
  const [trustDomain] = domains;
  if (domains.length !== 1 || trustDomain === undefined) {
    throw caError(`${certFile} must permit exactly one trust domain in a URI name constraint (it has ${domains.length}); make CAs with 'meshlet ca init'`);
  }
  const rootDomains = permittedTrustDomains(root);
  if (root !== cert && rootDomains.length > 0 && !rootDomains.includes(trustDomain)) {
    throw caError(`${certFile} is for trust domain ${trustDomain} but its root permits only ${rootDomains.join(', ')}`);
  }
  const intermediates = root === cert ? [] : [cert];
  return { dir, signer: { cert, key }, root, intermediates, trustDomain };
}

export interface InitRequest {
  readonly out: string;
  /** Directory of the root CA that signs the new intermediate; a new root when unset. */
  readonly root?: string | undefined;
  /** Required for a root; for an intermediate it defaults to the root's and must equal it. */
  readonly trustDomain: string | undefined;
  readonly ttlMs: number;
  readonly keyType: KeyType;
  readonly force: boolean;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export async function initCa(request: InitRequest, now: Date): Promise<Outcome & { trustDomain: string; kind: 'root' | 'intermediate' }> {
  if (request.root === undefined) {
    checkOutputDir(request.out, request.force, []);
    const trustDomain = request.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const issued = await createRootCa({ trustDomain, ttlMs: request.ttlMs, keyType: request.keyType, now });
    // A root directory has no root.crt: one left over from an intermediate would make
    // this directory read as an intermediate of some other root.
    write(request.out, issued, []);
    removeIfPresent(request.out, ROOT_CERT);
    return { ...outcome(request.out, issued, [CA_CERT, CA_KEY]), trustDomain, kind: 'root' };
  }

  checkOutputDir(request.out, request.force, [request.root]);
  const root = await loadCa(request.root, now);
  const rootFile = path.join(request.root, CA_CERT);
  if (root.intermediates.length > 0) {
    throw usage(`--root ${request.root} holds an intermediate CA (it has ${ROOT_CERT}); intermediates are signed by the root itself`);
  }
  const pathLength = caProperties(root.signer.cert).pathLength;
  if (pathLength === 0) throw caError(`${rootFile} has pathlen:0, so it cannot sign an intermediate CA`);
  const trustDomain = request.trustDomain ?? root.trustDomain;
  if (trustDomain !== root.trustDomain) {
    throw usage(`--trust-domain ${trustDomain} differs from the root's trust domain ${root.trustDomain} (${rootFile})`);
  }
  const issued = await createIntermediateCa({ root: root.signer, trustDomain, ttlMs: request.ttlMs, keyType: request.keyType, now });
  write(request.out, issued, [{ name: ROOT_CERT, content: certificatePem([root.root]), mode: CERT_MODE }]);
  return { ...outcome(request.out, issued, [CA_CERT, CA_KEY, ROOT_CERT]), trustDomain, kind: 'intermediate' };
}

export interface IssueRequest {
  readonly ca: string;
  readonly spiffeId: SpiffeId;
  readonly out: string;
  readonly ttlMs: number;
  readonly keyType: KeyType;
  readonly force: boolean;
}

export async function issue(request: IssueRequest, now: Date): Promise<Outcome> {
  // The SPIFFE ID's form (spiffe://TD/ns/NS/sa/SA) was checked with the flags.
  const { spiffeId } = request;
  checkOutputDir(request.out, request.force, [request.ca]);
  const ca = await loadCa(request.ca, now);
  if (spiffeId.trustDomain !== ca.trustDomain) {
    throw usage(
      `${spiffeId.id} is in trust domain ${spiffeId.trustDomain} but the CA in ${request.ca} signs only for trust domain ${ca.trustDomain}`,
    );
  }
  const issued = await issueWorkloadCertificate({ issuer: ca.signer, spiffeId: spiffeId.id, ttlMs: request.ttlMs, keyType: request.keyType, now });
  writeFiles(request.out, [
    { name: TLS_KEY, content: privateKeyPem(issued.privateKey), mode: KEY_MODE },
    // The leaf, then the intermediates a peer needs to reach the root; never the root
    // itself (peers have it already, and sending it proves nothing).
    { name: TLS_CERT, content: certificatePem([issued.cert, ...ca.intermediates]), mode: CERT_MODE },
    { name: CA_CERT, content: certificatePem([ca.root]), mode: CERT_MODE },
  ]);
  return outcome(request.out, issued, [TLS_CERT, TLS_KEY, CA_CERT]);
}

function write(dir: string, issued: Issued, extra: { name: string; content: string; mode: number }[]): void {
  writeFiles(dir, [
    { name: CA_KEY, content: privateKeyPem(issued.privateKey), mode: KEY_MODE },
    { name: CA_CERT, content: certificatePem([issued.cert]), mode: CERT_MODE },
    ...extra,
  ]);
}

function outcome(dir: string, issued: Issued, files: string[]): Outcome {
  return { dir, files, notAfter: issued.cert.notAfter, clamped: issued.clamped };
}

function sameCertificate(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

function checkCurrent(cert: x509.X509Certificate, file: string, now: Date): void {
  if (now < cert.notBefore) throw caError(`${file} is not valid before ${cert.notBefore.toISOString()}`);
  if (now >= cert.notAfter) throw caError(`${file} expired at ${cert.notAfter.toISOString()}`);
}

function caError(message: string): MeshletError {
  return new MeshletError('MESHLET_ERR_CA', message);
}

function usage(message: string): MeshletError {
  return new MeshletError('MESHLET_ERR_USAGE', message);
}
