// The L7 scenario's baselines: a pair of nginx or haproxy proxies configured to do what
// the meshlet pair does, as far as these proxies can.
//
//   client (pod a) → proxy a (a's loopback) ⇒ proxy b (b's address) → app (b's address)
//
// The client addresses proxy a explicitly: nginx and haproxy cannot read SO_ORIGINAL_DST,
// so there are no interception rules in these pods. Each listener of proxy a stands for
// one of the app's ports (HTTP/1.1, HTTP/2 cleartext, gRPC), and each of proxy b's for the
// same port on b. Both hops keep pools of upstream keep-alive connections:
//
//   nginx    `upstream { keepalive N; }`; HTTP/1.1 through `proxy_pass` with
//            `proxy_http_version 1.1` and an empty Connection header (nginx speaks only
//            HTTP/1.x to an HTTP upstream); HTTP/2 and gRPC through `grpc_pass`, nginx's
//            one HTTP/2 client (it carries any HTTP/2 request, not only gRPC; one request
//            at a time per upstream connection, nginx does not multiplex upstream).
//   haproxy  `mode http`, `http-reuse always`; HTTP/2 and gRPC upstream with `proto h2`
//            (multiplexed on the reused connections).
//
// Host is preserved (as meshlet does), nothing is logged (meshlet's access log is off by
// default), keep-alive limits are lifted (nginx closes a client or upstream connection
// after 1000 requests by default). One process and one thread each: nginx with
// `master_process off` and `worker_processes 1` (the master would only supervise the
// worker), haproxy with `nbthread 1` in the foreground (-db, no master) — the same as one
// Node process per sidecar. Both run as the proxy UID (1337), not root.
//
// The TLS variant (nginx only) encrypts the hop between the two proxies with client
// certificates: proxy b requires and verifies a client certificate, proxy a verifies
// proxy b's certificate and name, TLS 1.3 only — the counterpart of meshlet's mTLS.
//
// The Node.js floor pair (bench/apps/node-pair.ts) is not an established proxy but the
// least a pair of Node processes can do on meshlet's path: the same listeners, the nginx
// TLS pair's certificates, every request as a stream on one mTLS HTTP/2 session per
// protocol between the proxies (meshlet's design), and none of meshlet's features. It
// tells how much of meshlet's distance to nginx is the runtime's. Also one process each,
// as UID 1337.
//
// The Node.js ceiling pair (bench/apps/node-raw-pair.ts) is the other end: the simplest
// Node pair that moves HTTP/1.1 on raw sockets (heads split at CRLFCRLF, Content-Length
// bodies, pooled upstream keep-alive sockets, plaintext on both hops, no node:http), on
// the HTTP/1.1 ports only. It tells what the runtime can do on this path at all.
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from '../../src/testbed/exec.ts';
import { nodeCommandUnder, PROXY_UID, type Pod, type ProxyUnder, type SpawnedProcess } from '../../src/testbed/netns.ts';
import { findProcess } from './procfs.ts';

export type Protocol = 'h1' | 'h2' | 'grpc';
export const PROTOCOLS: Protocol[] = ['h1', 'h2', 'grpc'];
export type Ports = Record<Protocol, number>;

/** The app's ports in pod b. */
export const APP_PORTS: Ports = { h1: 8080, h2: 8081, grpc: 8082 };
/** Proxy a's listeners, on a's loopback: what the client addresses. */
export const FRONT_PORTS: Ports = { h1: 18080, h2: 18081, grpc: 18082 };
/** Proxy b's listeners, on b's address. */
export const BACK_PORTS: Ports = { h1: 28080, h2: 28081, grpc: 28082 };

/** Upstream keep-alive connections each nginx upstream keeps idle (per protocol): above any run's concurrency. */
const NGINX_KEEPALIVE = 128;
const APPS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'apps');
/** The Node.js floor pair's one process per pod. */
const NODE_PAIR = path.join(APPS, 'node-pair.ts');
/** The Node.js ceiling pair's one process per pod. */
const NODE_RAW_PAIR = path.join(APPS, 'node-raw-pair.ts');
/** The name in proxy b's certificate (a DNS SAN) that proxy a verifies. */
export const BASELINE_SERVER_NAME = 'server.bench.local';

export interface BaselineTls {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

interface Addresses {
  /** a's loopback, where proxy a listens ("127.0.0.1" or "::1"). */
  loopback: string;
  /** b's address, where proxy b and the app listen. */
  server: string;
}

/** host:port, IPv6 in brackets. */
export const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

function nginxConf(role: 'a' | 'b', dir: string, at: Addresses, tls: BaselineTls | undefined): string {
  const upstreamPorts = role === 'a' ? BACK_PORTS : APP_PORTS;
  const upstreamHost = at.server;
  const listenHost = role === 'a' ? at.loopback : at.server;
  const listenPorts = role === 'a' ? FRONT_PORTS : BACK_PORTS;
  // Upstream TLS only from a to b; the app speaks cleartext.
  const upTls = role === 'a' && tls !== undefined;
  const downTls = role === 'b' && tls !== undefined;
  const clientTls = (prefix: 'proxy' | 'grpc') =>
    upTls
      ? [
          `${prefix}_ssl_certificate ${tls.clientCert};`,
          `${prefix}_ssl_certificate_key ${tls.clientKey};`,
          `${prefix}_ssl_trusted_certificate ${tls.ca};`,
          `${prefix}_ssl_verify on;`,
          `${prefix}_ssl_name ${BASELINE_SERVER_NAME};`,
          `${prefix}_ssl_server_name on;`,
          `${prefix}_ssl_protocols TLSv1.3;`,
          `${prefix}_ssl_session_reuse on;`,
        ].map((l) => `      ${l}`).join('\n')
      : '';
  const listen = (p: Protocol) => `listen ${hostPort(listenHost, listenPorts[p])}${downTls ? ' ssl' : ''}${p === 'h1' ? '' : ' http2'};`;
  const serverTls = downTls
    ? [
        `ssl_certificate ${tls.serverCert};`,
        `ssl_certificate_key ${tls.serverKey};`,
        `ssl_client_certificate ${tls.ca};`,
        'ssl_verify_client on;',
        'ssl_protocols TLSv1.3;',
      ].map((l) => `    ${l}`).join('\n')
    : '';
  const upstream = (p: Protocol) => `  upstream up_${p} {
    server ${hostPort(upstreamHost, upstreamPorts[p])};
    keepalive ${NGINX_KEEPALIVE};
    keepalive_requests 1000000;
    keepalive_timeout 600s;
  }`;
  const scheme = (p: Protocol) => (p === 'h1' ? (upTls ? 'https' : 'http') : upTls ? 'grpcs' : 'grpc');
  const location = (p: Protocol) =>
    p === 'h1'
      ? `      proxy_pass ${scheme(p)}://up_${p};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
${clientTls('proxy')}`
      : `      grpc_pass ${scheme(p)}://up_${p};
      grpc_set_header Host $http_host;
${clientTls('grpc')}`;
  return `# nginx ${role === 'a' ? 'a (client side)' : 'b (server side)'}${tls ? ', TLS between the proxies' : ''}: generated by bench/lib/baselines.ts
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections 8192;
}
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${PROTOCOLS.map(upstream).join('\n')}
${PROTOCOLS.map(
  (p) => `  server {
    ${listen(p)}
${serverTls}
    location / {
${location(p)}
    }
  }`,
).join('\n')}
}
`;
}

function haproxyConf(role: 'a' | 'b', at: Addresses): string {
  const upstreamPorts = role === 'a' ? BACK_PORTS : APP_PORTS;
  const listenHost = role === 'a' ? at.loopback : at.server;
  const listenPorts = role === 'a' ? FRONT_PORTS : BACK_PORTS;
  const h2 = (p: Protocol) => (p === 'h1' ? '' : ' proto h2');
  return `# haproxy ${role === 'a' ? 'a (client side)' : 'b (server side)'}: generated by bench/lib/baselines.ts
global
  nbthread 1
  # As a non-root process haproxy cannot raise its file limit: connections within it.
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout http-keep-alive 600s
${PROTOCOLS.map(
  (p) => `frontend in_${p}
  bind ${hostPort(listenHost, listenPorts[p])}${h2(p)}
  default_backend up_${p}
backend up_${p}
  server up ${hostPort(at.server, upstreamPorts[p])}${h2(p)}`,
).join('\n')}
`;
}

export interface BaselineProxy {
  pod: string;
  pid: number;
  process: SpawnedProcess;
  /** Its generated config file (the Node.js floor pair: its script, configured by flags). */
  config: string;
}

/**
 * Starts proxy a and proxy b of a baseline pair (as the proxy UID), with configs written
 * under `workDir`. Returns once both processes run; the caller checks the path end to end.
 */
export async function startBaselinePair(
  kind: 'nginx' | 'haproxy',
  pods: { a: Pod; b: Pod },
  at: Addresses,
  workDir: string,
  tls?: BaselineTls,
): Promise<BaselineProxy[]> {
  const out: BaselineProxy[] = [];
  for (const role of ['a', 'b'] as const) {
    const dir = path.join(workDir, `${kind}${tls ? '-tls' : ''}-${role}`);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chownSync(dir, PROXY_UID, PROXY_UID);
    const config = path.join(dir, `${kind}.conf`);
    writeFileSync(config, kind === 'nginx' ? nginxConf(role, dir, at, tls) : haproxyConf(role, at), { mode: 0o644 });
    const pod = pods[role];
    const argv = kind === 'nginx' ? ['nginx', '-p', dir, '-e', path.join(dir, 'error.log'), '-c', config] : ['haproxy', '-db', '-f', config];
    // A bad config fails here, with the proxy's own message.
    const check = kind === 'nginx' ? [...argv, '-t', '-q'] : ['haproxy', '-c', '-q', '-f', config];
    const checked = await pod.run(check, { uid: PROXY_UID });
    if (checked.code !== 0) throw new Error(`${kind} ${role}: config rejected: ${checked.stderr.trim() || checked.stdout.trim()}\n${config}`);
    const proc = pod.spawn(argv, { uid: PROXY_UID });
    await new Promise((r) => setTimeout(r, 100));
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${kind} ${role} exited at start (${proc.child.exitCode ?? proc.child.signalCode}): ${proc.output().stderr.trim()}`);
    }
    // `ip netns exec` and `setpriv` exec in place, so this is the pid of the proxy itself.
    const pid = findProcess(proc.child.pid!, (a) => a[0] === kind || a[0]?.endsWith(`/${kind}`) === true) ?? proc.child.pid!;
    out.push({ pod: role, pid, process: proc, config });
  }
  return out;
}

const portList = (ports: Ports) => [ports.h1, ports.h2, ports.grpc].join(',');

/**
 * One Node process per pod (`script a|b` plus that role's flags) as the proxy UID;
 * resolves once both print "ready". A key the UID cannot read, or a port in use, fails
 * here with Node's own message.
 */
async function startNodeProcesses(name: string, script: string, pods: { a: Pod; b: Pod }, flags: Record<'a' | 'b', string[]>, underOf?: (pod: Pod) => ProxyUnder): Promise<BaselineProxy[]> {
  const out: BaselineProxy[] = [];
  for (const role of ['a', 'b'] as const) {
    const under = underOf?.(pods[role]) ?? {};
    const proc = pods[role].spawn(nodeCommandUnder(under, script, [role, ...flags[role]]), { uid: PROXY_UID });
    try {
      await proc.waitForLine(/"ready":true/, under.readyTimeoutMs ?? 20_000);
    } catch (err) {
      throw new Error(`${name} ${role}: ${(err as Error).message}`);
    }
    // `ip netns exec`, setpriv and a prefix such as valgrind exec in place: the node process is the one whose argv has the script (setpriv's has it too).
    const pid = findProcess(proc.child.pid!, (a) => a.includes(script) && !a.includes('setpriv')) ?? proc.child.pid!;
    out.push({ pod: role, pid, process: proc, config: script });
  }
  return out;
}

/**
 * Starts the Node.js floor pair as the proxy UID with the nginx TLS pair's certificates
 * (issueBaselineCerts hands the keys to that UID): a on a's loopback forwarding to b's
 * back ports over mTLS, b forwarding to the app.
 */
export function startNodePair(pods: { a: Pod; b: Pod }, at: Addresses, tls: BaselineTls): Promise<BaselineProxy[]> {
  const common = ['--ca', tls.ca, '--server-name', BASELINE_SERVER_NAME];
  return startNodeProcesses('Node.js floor pair', NODE_PAIR, pods, {
    a: ['--listen', at.loopback, '--ports', portList(FRONT_PORTS), '--upstream', at.server, '--upstream-ports', portList(BACK_PORTS), '--cert', tls.clientCert, '--key', tls.clientKey, ...common],
    b: ['--listen', at.server, '--ports', portList(BACK_PORTS), '--upstream', at.server, '--upstream-ports', portList(APP_PORTS), '--cert', tls.serverCert, '--key', tls.serverKey, ...common],
  });
}

/**
 * Starts the Node.js ceiling pair (raw sockets, HTTP/1.1 only, plaintext) as the proxy
 * UID: a on a's loopback HTTP/1.1 port forwarding to b's, b forwarding to the app's.
 */
/** `under`: a program each process runs under (a profiler), its node flags and how long it may take to be ready. */
export function startNodeRawPair(pods: { a: Pod; b: Pod }, at: Addresses, under?: (pod: Pod) => ProxyUnder): Promise<BaselineProxy[]> {
  return startNodeProcesses(
    'Node.js ceiling pair',
    NODE_RAW_PAIR,
    pods,
    {
      a: ['--listen', at.loopback, '--port', String(FRONT_PORTS.h1), '--upstream', at.server, '--upstream-port', String(BACK_PORTS.h1)],
      b: ['--listen', at.server, '--port', String(BACK_PORTS.h1), '--upstream', at.server, '--upstream-port', String(APP_PORTS.h1)],
    },
    under,
  );
}

/**
 * Certificates for the nginx TLS pair and the Node.js floor pair, signed by the run's
 * meshlet CA (ECDSA P-256 like the workload certificates, the same SPIFFE IDs as URI
 * SANs), plus the DNS name that nginx's upstream verification checks (meshlet verifies
 * the SPIFFE ID instead; nginx can only check a host name, and the floor checks the same
 * name). Owned by the proxy UID.
 */
export async function issueBaselineCerts(caDir: string, dir: string, spiffe: { client: string; server: string }): Promise<BaselineTls> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const make = async (name: 'client' | 'server') => {
    const key = path.join(dir, `${name}.key`);
    const csr = path.join(dir, `${name}.csr`);
    const crt = path.join(dir, `${name}.crt`);
    const ext = path.join(dir, `${name}.ext`);
    const san = name === 'server' ? `URI:${spiffe.server},DNS:${BASELINE_SERVER_NAME}` : `URI:${spiffe.client}`;
    writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${san}\n`);
    await runOk(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/O=meshlet-bench/CN=${name}`, '-out', csr], { timeoutMs: 30_000 });
    const serial = `0x${Date.now().toString(16)}${name === 'server' ? '1' : '2'}`;
    await runOk(['openssl', 'x509', '-req', '-in', csr, '-CA', path.join(caDir, 'ca.crt'), '-CAkey', path.join(caDir, 'ca.key'), '-set_serial', serial, '-days', '1', '-sha256', '-extfile', ext, '-out', crt], {
      timeoutMs: 30_000,
    });
    for (const f of [key, crt]) chownSync(f, PROXY_UID, PROXY_UID);
    chmodSync(key, 0o600);
    return { crt, key };
  };
  const server = await make('server');
  const client = await make('client');
  const ca = path.join(dir, 'ca.crt');
  await runOk(['cp', path.join(caDir, 'ca.crt'), ca]);
  chmodSync(ca, 0o644);
  return { ca, serverCert: server.crt, serverKey: server.key, clientCert: client.crt, clientKey: client.key };
}
