import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describeError, MeshletError } from '../../errors.ts';
import { x509 } from './x509.ts';

// Reading and writing the PEM files. A CA directory holds `ca.crt` (the signing
// certificate) and `ca.key` (its key), plus `root.crt` (the trust anchor) when the
// signing certificate is an intermediate. A workload directory holds `tls.crt`,
// `tls.key` and `ca.crt` (the layout of Kubernetes TLS secrets and cert-manager).

export const CA_CERT = 'ca.crt';
export const CA_KEY = 'ca.key';
export const ROOT_CERT = 'root.crt';
export const TLS_CERT = 'tls.crt';
export const TLS_KEY = 'tls.key';

export const KEY_MODE = 0o600;
export const CERT_MODE = 0o644;
export const DIR_MODE = 0o700;

export interface OutputFile {
  readonly name: string;
  readonly content: string;
  readonly mode: number;
}

/** The text of `dir/name`; a MESHLET_ERR_CA naming the file when it cannot be read. */
export function readText(dir: string, name: string): string {
  const file = path.join(dir, name);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    const why = errno === 'ENOENT' ? 'it does not exist' : errno === 'EACCES' ? 'permission denied' : describeError(err);
    throw new MeshletError('MESHLET_ERR_CA', `cannot read ${file}: ${why}`, { cause: err });
  }
}

export function exists(dir: string, name: string): boolean {
  try {
    lstatSync(path.join(dir, name));
    return true;
  } catch {
    return false; // ENOENT and the like: callers only ask whether to read it
  }
}

/** Exactly one PEM certificate from `dir/name`. */
export function readCertificate(dir: string, name: string): x509.X509Certificate {
  const file = path.join(dir, name);
  const text = readText(dir, name);
  let blocks: { type: string; rawData: ArrayBuffer }[];
  try {
    blocks = x509.PemConverter.decodeWithHeaders(text);
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_CA', `${file} is not PEM: ${describeError(err)}`, { cause: err });
  }
  const certs = blocks.filter((b) => b.type === 'CERTIFICATE');
  if (certs.length !== 1) {
    throw new MeshletError('MESHLET_ERR_CA', `${file} holds ${certs.length} PEM certificates; expected exactly one`);
  }
  try {
    return new x509.X509Certificate(certs[0]!.rawData);
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_CA', `${file} is not a valid X.509 certificate: ${describeError(err)}`, { cause: err });
  }
}

/**
 * Refuses an output directory that is not a directory, that holds anything when
 * `force` is not set, or that is one of `protectedDirs` (the CA being read: not even
 * --force may overwrite its key). A missing directory is fine: writeFiles creates it.
 * Changes nothing, so a refused command leaves no trace.
 */
export function checkOutputDir(dir: string, force: boolean, protectedDirs: readonly string[]): void {
  let stat;
  try {
    stat = statSync(dir);
  } catch {
    return; // missing: created by writeFiles
  }
  if (!stat.isDirectory()) throw new MeshletError('MESHLET_ERR_USAGE', `--out ${dir} exists and is not a directory`);
  const real = realpathSync(dir);
  for (const other of protectedDirs) {
    if (real === safeRealpath(other)) {
      throw new MeshletError('MESHLET_ERR_USAGE', `--out ${dir} is the CA directory being read; choose another directory`);
    }
  }
  const entries = readdirSync(dir).sort();
  if (entries.length > 0 && !force) {
    const shown = entries.length > 4 ? `${entries.slice(0, 4).join(', ')}, ...` : entries.join(', ');
    throw new MeshletError('MESHLET_ERR_USAGE', `--out ${dir} is not empty (${shown}); pass --force to overwrite`);
  }
}

/**
 * Creates `dir` (mode 0700) when missing and writes each file whole: to a temporary
 * name in the same directory with its final mode, then renamed over the old one, so
 * a reader (the proxy's identity watcher) never sees half a file and a key is never
 * readable by others, even for an instant.
 */
export function writeFiles(dir: string, files: readonly OutputFile[]): void {
  try {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_CA', `cannot create ${dir}: ${describeError(err)}`, { cause: err });
  }
  for (const file of files) {
    const target = path.join(dir, file.name);
    const temporary = path.join(dir, `.${file.name}.${process.pid}.tmp`);
    try {
      rmSync(temporary, { force: true });
      writeFileSync(temporary, file.content, { mode: file.mode, flag: 'wx' });
      chmodSync(temporary, file.mode); // exactly this mode, whatever the umask
      renameSync(temporary, target);
    } catch (err) {
      rmSync(temporary, { force: true });
      throw new MeshletError('MESHLET_ERR_CA', `cannot write ${target}: ${describeError(err)}`, { cause: err });
    }
  }
}

export function removeIfPresent(dir: string, name: string): void {
  rmSync(path.join(dir, name), { force: true });
}

function safeRealpath(dir: string): string | undefined {
  try {
    return realpathSync(dir);
  } catch {
    return undefined; // a directory that does not exist cannot be the output directory
  }
}
