import { X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runOk } from './exec.ts';
import { MESHLET_BIN, PROXY_UID } from './netns.ts';

// Workload identities for the end-to-end tests, made with the real `meshlet ca` on the
// host (as root) and handed to the proxy UID, which must read tls.key (`ca issue` writes
// it 0600 in a 0700 directory). Also lays a directory out the way the kubelet mounts a
// secret volume (files → ..data/ → ..<timestamp>/) and swaps it as the kubelet does.

export interface IssuedIdentity {
  spiffeId: string;
  /** Directory with tls.crt, tls.key and ca.crt, owned by the proxy UID. */
  dir: string;
  /** The leaf certificate's serial, as `openssl x509 -serial` and the proxy's logs print it (upper-case hex). */
  serial: string;
  notAfter: Date;
}

export class IdentityStore {
  /** Traversable by everyone; CA directories inside stay root-only (0700). */
  readonly root: string;
  #seq = 0;
  #exitHook = () => this.remove();

  constructor() {
    this.root = mkdtempSync(path.join(os.tmpdir(), 'meshlet-e2e-ids-'));
    chmodSync(this.root, 0o755);
    // Keys must not outlive a run that ends abruptly (process.exit, a failed assertion's bail-out).
    process.once('exit', this.#exitHook);
  }

  /** A root CA for `trustDomain`; returns its directory. */
  async ca(name: string, trustDomain = 'cluster.local'): Promise<string> {
    const out = path.join(this.root, name);
    await runOk([process.execPath, MESHLET_BIN, 'ca', 'init', '--out', out, '--trust-domain', trustDomain], { timeoutMs: 30_000 });
    return out;
  }

  /** A workload certificate from `caDir`, readable by the proxy UID. */
  async issue(caDir: string, spiffeId: string, options: { name?: string; ttl?: string } = {}): Promise<IssuedIdentity> {
    const dir = path.join(this.root, options.name ?? `id-${++this.#seq}`);
    await runOk([process.execPath, MESHLET_BIN, 'ca', 'issue', '--ca', caDir, '--spiffe-id', spiffeId, '--out', dir, '--ttl', options.ttl ?? '24h'], {
      timeoutMs: 30_000,
    });
    giveToProxy(dir);
    const leaf = new X509Certificate(readFileSync(path.join(dir, 'tls.crt')));
    return { spiffeId, dir, serial: leaf.serialNumber.toUpperCase(), notAfter: new Date(leaf.validTo) };
  }

  /** A self-signed certificate for an app's own TLS (not a mesh identity), via openssl. */
  async selfSigned(name: string, subject: string): Promise<{ cert: string; key: string; fingerprint256: string }> {
    const dir = path.join(this.root, name);
    mkdirSync(dir, { mode: 0o755 });
    const cert = path.join(dir, 'app.crt');
    const key = path.join(dir, 'app.key');
    await runOk(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', subject], {
      timeoutMs: 30_000,
    });
    chmodSync(key, 0o644); // a throwaway test key, read by the app's UID
    return { cert, key, fingerprint256: new X509Certificate(readFileSync(cert)).fingerprint256 };
  }

  remove(): void {
    process.removeListener('exit', this.#exitHook);
    rmSync(this.root, { recursive: true, force: true });
  }
}

function giveToProxy(dir: string): void {
  chownSync(dir, PROXY_UID, PROXY_UID);
  for (const name of readdirSync(dir)) chownSync(path.join(dir, name), PROXY_UID, PROXY_UID);
}

/**
 * A directory laid out like a Kubernetes secret volume: `tls.crt -> ..data/tls.crt`,
 * `..data -> ..<version>`, with the files in `..<version>/`. `swap` installs new
 * contents the way the kubelet's atomic writer does: a new version directory, a new
 * `..data_tmp` symlink, renamed over `..data` (one atomic rename), old version removed.
 */
export class SecretVolume {
  readonly dir: string;
  #version = 0;

  constructor(dir: string, initial: string) {
    this.dir = dir;
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, PROXY_UID, PROXY_UID);
    const first = this.#writeVersion(initial);
    symlinkSync(first, path.join(dir, '..data'));
    for (const file of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(path.join('..data', file), path.join(dir, file));
  }

  /** Atomically replaces the contents with those of `from` (a directory with the three files). */
  swap(from: string): void {
    const data = path.join(this.dir, '..data');
    const old = path.join(this.dir, readlinkSync(data));
    const next = this.#writeVersion(from);
    const tmp = path.join(this.dir, '..data_tmp');
    symlinkSync(next, tmp);
    renameSync(tmp, data);
    rmSync(old, { recursive: true, force: true });
  }

  #writeVersion(from: string): string {
    const name = `..v${++this.#version}`;
    const target = path.join(this.dir, name);
    cpSync(from, target, { recursive: true, preserveTimestamps: true });
    chmodSync(target, 0o755);
    chownSync(target, PROXY_UID, PROXY_UID);
    for (const file of readdirSync(target)) chownSync(path.join(target, file), PROXY_UID, PROXY_UID);
    return name;
  }
}
