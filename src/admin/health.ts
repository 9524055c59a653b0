import http from 'node:http';
import type { Registry } from 'prom-client';
import { bindDualStack } from '../net/bind.ts';
import type { AppProbes } from './app-probes.ts';
import type { Readiness } from './readiness.ts';

export interface HealthServer {
  server: http.Server;
  port: number;
}

/**
 * Port 15020, reachable by the kubelet and Prometheus: readiness (every condition of
 * `readiness`; the body names those that fail), liveness, and metrics in the Prometheus
 * text format; and the app's own probes that inject moved here (`/app-health/...`), each
 * run against the app when asked, so a slow app delays only its own probe.
 */
export async function startHealthServer(port: number, registry: Registry, readiness: Readiness, appProbes?: AppProbes): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/healthz/ready': {
        const failing = readiness.failing();
        const ready = failing.length === 0;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : `not ready: ${failing.join('; ')}\n`);
        return;
      }
      case '/healthz/live':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
        return;
      case '/stats/prometheus':
      case '/metrics':
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
        return;
      default: {
        const probe = appProbes?.get(path ?? '');
        if (probe) {
          probe().then(({ ok, detail }) => res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(`${ok ? 'ok' : 'failed'}: ${detail}\n`));
          return;
        }
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    }
  });
  if (appProbes) server.on('close', appProbes.close);
  const bound = await bindDualStack(server, port);
  return { server, port: bound };
}
