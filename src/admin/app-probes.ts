import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Config } from '../config/schema.ts';

export type AppProbeSpec = Config['health']['appProbes'][string];

/** What one run of an app probe found; `detail` goes into the health server's answer. */
export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** The app's own probes by path (`/app-health/<container>/livez`), each built once. */
export interface AppProbes {
  get(path: string): (() => Promise<ProbeResult>) | undefined;
  close(): void;
}

type Check = (timeoutMs: number) => Promise<ProbeResult>;

// The proxy runs as the UID the interception rules exempt, so loopback reaches the app
// directly, as kubelet's probe would have reached it before the rewrite.
const APP_HOST = '127.0.0.1';
// kubelet sends these unless the probe's httpHeaders replace them.
const KUBELET_HEADERS = { 'user-agent': 'kube-probe/meshlet', accept: '*/*' };

/**
 * Checks the app the way kubelet would have (docs/kubernetes.md, "Probes under strict
 * mTLS"). gRPC probes load @grpc/grpc-js only when there is one.
 */
export async function createAppProbes(specs: Readonly<Record<string, AppProbeSpec>>): Promise<AppProbes> {
  const grpcProbes = Object.values(specs).some((s) => s.grpc) ? await import('./grpc-health-probe.ts') : undefined;
  const closers: (() => void)[] = [];
  const runs = new Map<string, () => Promise<ProbeResult>>();
  for (const [path, spec] of Object.entries(specs)) {
    let check: Check;
    if (spec.httpGet) check = httpCheck(spec.httpGet);
    else if (spec.tcpSocket) check = tcpCheck(spec.tcpSocket.port);
    else {
      // The schema allows exactly one handler, so this is grpc.
      const probe = grpcProbes!.grpcHealthProbe(APP_HOST, spec.grpc!.port, spec.grpc!.service ?? '');
      closers.push(probe.close);
      check = probe.check;
    }
    const timeoutMs = (spec.timeoutSeconds ?? 1) * 1000;
    runs.set(path, () => check(timeoutMs));
  }
  return {
    get: (path) => runs.get(path),
    close: () => closers.forEach((close) => close()),
  };
}

function httpCheck(get: NonNullable<AppProbeSpec['httpGet']>): Check {
  const secure = get.scheme === 'HTTPS';
  const headers: Record<string, string> = { ...KUBELET_HEADERS };
  for (const { name, value } of get.httpHeaders ?? []) headers[name.toLowerCase()] = value;
  const path = get.path === undefined || get.path === '' ? '/' : get.path.startsWith('/') ? get.path : `/${get.path}`;
  // No agent: one fresh connection per probe, as kubelet uses, and nothing kept open between probes.
  const options: https.RequestOptions = { host: APP_HOST, port: get.port, path, method: 'GET', headers, agent: false };
  if (secure) options.rejectUnauthorized = false; // kubelet does not verify the app's certificate
  const request = secure ? https.request : http.request;
  return (timeoutMs) =>
    new Promise((resolve) => {
      const req = request({ ...options, timeout: timeoutMs }, (res) => {
        const status = res.statusCode ?? 0;
        res.resume(); // the body is not kept
        req.destroy();
        // kubelet's rule: 200-399 is success; a redirect is not followed.
        resolve({ ok: status >= 200 && status < 400, detail: `HTTP ${status}` });
      });
      req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs / 1000}s`)));
      req.on('error', (err) => resolve({ ok: false, detail: describe(err) }));
      req.end();
    });
}

function tcpCheck(port: number): Check {
  return (timeoutMs) =>
    new Promise((resolve) => {
      const socket = net.connect({ host: APP_HOST, port, timeout: timeoutMs });
      socket.on('connect', () => {
        socket.destroy();
        resolve({ ok: true, detail: `connected to port ${port}` });
      });
      socket.on('timeout', () => socket.destroy(new Error(`no connection within ${timeoutMs / 1000}s`)));
      socket.on('error', (err) => resolve({ ok: false, detail: describe(err) }));
    });
}

function describe(err: Error & { code?: string }): string {
  return err.code ? `${err.code}: ${err.message}` : err.message;
}
