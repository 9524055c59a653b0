import http from 'node:http';
import { bindLoopback } from '../net/bind.ts';
import type { IdentityView } from './certs.ts';
import type { ClusterEntry } from './clusters.ts';
import type { DrainStatus } from './drain.ts';
import type { TargetSnapshot } from '../resilience/targets.ts';

// The admin server: 127.0.0.1 only (reachable from the pod's own containers, never from
// the network), JSON answers. Reading is GET; whatever changes the proxy is POST only, so
// a stray GET (a browser prefetch, a curl without -X) cannot drain or stop it.

/** What the admin endpoints read and do; the proxy supplies it. */
export interface AdminControls {
  /** The effective configuration, secrets already redacted. */
  configDump(): unknown;
  clusters(): ClusterEntry[];
  /** Per destination: its resilience policy and state (retry budget, limits); none when absent. */
  resilience?(): TargetSnapshot[];
  /** The workload identity in use; undefined when none is configured (no mTLS). */
  certs(): IdentityView | undefined;
  logLevel(): string;
  /** Sets the log level; `level` is one of `levels`. */
  setLogLevel(level: string): void;
  readonly levels: readonly string[];
  /** Starts the graceful drain (again: nothing more happens) and tells where it is. */
  drain(): DrainStatus;
  /** Ends the proxy now; called once the answer has been sent. */
  quit(): void;
}

export interface AdminServer {
  server: http.Server;
  port: number;
}

interface Answer {
  status: number;
  body: unknown;
  /** Runs once the answer has been written (POST /quitquitquit). */
  after?: () => void;
}

type Route = Partial<Record<'GET' | 'POST', (query: URLSearchParams) => Answer>>;

const ok = (body: unknown): Answer => ({ status: 200, body });

function routes(controls: AdminControls): Record<string, Route> {
  return {
    '/config_dump': { GET: () => ok(controls.configDump()) },
    '/clusters': { GET: () => ok({ clusters: controls.clusters(), resilience: controls.resilience?.() ?? [] }) },
    '/certs': {
      GET: () => {
        const identity = controls.certs();
        return ok(identity ? { identity } : { identity: null, reason: 'no identity configured (identity.dir is unset): no mTLS' });
      },
    },
    '/logging': {
      GET: () => ok({ level: controls.logLevel(), levels: controls.levels }),
      POST: (query) => {
        const level = query.get('level');
        if (level === null || !controls.levels.includes(level)) {
          const got = level === null ? 'no level' : `"${level}"`;
          return { status: 400, body: { error: `?level= must be one of ${controls.levels.join(', ')}; got ${got}` } };
        }
        const previous = controls.logLevel();
        controls.setLogLevel(level);
        return ok({ level, previous });
      },
    },
    '/drain': { POST: () => ({ status: 202, body: controls.drain() }) },
    '/quitquitquit': { POST: () => ({ status: 200, body: { quitting: true }, after: () => controls.quit() }) },
  };
}

export async function startAdminServer(port: number, controls: AdminControls): Promise<AdminServer> {
  const endpoints = routes(controls);
  const index = Object.entries(endpoints).map(([path, route]) => `${Object.keys(route).join(',')} ${path}`);
  const table: Record<string, Route> = { '/': { GET: () => ok({ endpoints: index }) }, ...endpoints };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = Object.hasOwn(table, url.pathname) ? table[url.pathname] : undefined;
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let answer: Answer;
    if (!route) {
      answer = { status: 404, body: { error: `no admin endpoint ${url.pathname}; GET / lists them` } };
    } else if (method !== 'GET' && method !== 'POST') {
      answer = { status: 405, body: { error: `${req.method} is not allowed here` } };
    } else if (!route[method]) {
      answer = { status: 405, body: { error: `${url.pathname} answers ${Object.keys(route).join(' and ')} only` } };
    } else {
      try {
        answer = route[method](url.searchParams);
      } catch (err) {
        answer = { status: 500, body: { error: (err as Error).message } };
      }
    }
    // Nothing is read from a request body; let the connection go after the answer.
    req.resume();
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'cache-control': 'no-store' };
    if (answer.status === 405 && route) headers.allow = Object.keys(route).join(', ');
    res.writeHead(answer.status, headers).end(`${JSON.stringify(answer.body, null, 2)}\n`, answer.after);
  });
  const bound = await bindLoopback(server, port);
  return { server, port: bound };
}
