import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { Logger } from '../log.ts';
import { describeError, MeshletError } from '../errors.ts';
import type { InjectSettings } from '../inject/settings.ts';
import { answerReview, type Scope } from './review.ts';

// The webhook's HTTPS server: POST /inject takes an AdmissionReview, GET /healthz is
// for the Deployment's probes. The serving certificate is read from a directory in
// the Kubernetes TLS secret layout (tls.crt, tls.key) and re-read periodically, so a
// renewed secret (cert-manager) is picked up without a restart.

/** The API server sends a whole Pod; Kubernetes caps objects at about 1.5 MiB. */
const MAX_BODY = 4 * 1024 * 1024;
const RELOAD_MS = 30_000;

export interface WebhookOptions {
  readonly port: number;
  readonly host?: string;
  readonly tlsDir: string;
  readonly settings: InjectSettings;
  readonly scope: Scope;
  readonly log: Logger;
  /** How often the certificate files are re-read (tests shorten it). */
  readonly reloadMs?: number;
}

export interface Webhook {
  readonly port: number;
  close(): Promise<void>;
}

interface Pem {
  readonly cert: string;
  readonly key: string;
}

function readPem(dir: string): Pem {
  const read = (file: string) => {
    try {
      return readFileSync(path.join(dir, file), 'utf8');
    } catch (err) {
      throw new MeshletError('MESHLET_ERR_IDENTITY', `${path.join(dir, file)}: ${describeError(err)} (the webhook's serving certificate: tls.crt and tls.key)`);
    }
  };
  return { cert: read('tls.crt'), key: read('tls.key') };
}

export async function startWebhook(options: WebhookOptions): Promise<Webhook> {
  const { log } = options;
  let pem = readPem(options.tlsDir);
  const server = https.createServer({ ...pem, minVersion: 'TLSv1.2' }, (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (url === '/healthz' && req.method === 'GET') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (url !== '/inject') return send(404, { error: `no ${url} here; the API server posts to /inject` });
    if (req.method !== 'POST') return void res.writeHead(405, { allow: 'POST' }).end();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        send(413, { error: `body over ${MAX_BODY} bytes` });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        return send(400, { error: `not JSON: ${describeError(err)}` });
      }
      try {
        const answer = answerReview(body, options.settings, options.scope);
        const request = (body as { request?: { uid?: unknown; namespace?: unknown } }).request;
        log.info({ uid: request?.uid, namespace: request?.namespace, outcome: answer.outcome }, 'admission review');
        send(answer.status, answer.body);
      } catch (err) {
        log.error({ err: describeError(err) }, 'admission review failed');
        send(500, { error: describeError(err) });
      }
    });
  });
  const reload = setInterval(() => {
    try {
      const next = readPem(options.tlsDir);
      if (next.cert === pem.cert && next.key === pem.key) return;
      server.setSecureContext({ ...next, minVersion: 'TLSv1.2' });
      pem = next;
      log.info({ dir: options.tlsDir }, 'serving certificate reloaded');
    } catch (err) {
      log.warn({ err: describeError(err) }, 'serving certificate not reloaded; keeping the previous one');
    }
  }, options.reloadMs ?? RELOAD_MS).unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new MeshletError('MESHLET_ERR_LISTEN', `webhook port ${options.port}: ${describeError(err)}`)));
    server.listen(options.port, options.host ?? '::', resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () =>
      new Promise((resolve) => {
        clearInterval(reload);
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
