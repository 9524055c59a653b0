import t from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import { BufferedBody, type BodySink } from '../../../src/pipeline/body.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../../../src/pipeline/connection.ts';
import type { ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { AccessLog, connectionLogLayer, requestLogSink } from '../../../src/telemetry/access-log.ts';
import { exchangeLayer } from '../../../src/telemetry/exchange-layer.ts';
import { captureLog } from '../../helpers/capture-log.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

// The access log, through the recording layer with fake inner handlers: which lines are
// written, with what, and what is never written.

const CALLER = 'spiffe://cluster.local/ns/shop/sa/frontend';
const conn = {
  id: 7,
  direction: 'inbound',
  peer: { address: '10.0.0.2', port: 40000 },
  origDst: { address: '10.0.0.3', port: 8080 },
  security: 'mutual_tls',
  peerPrincipal: CALLER,
} as unknown as AcceptedConnection;

function setup(level: string, settings = { enabled: true, sampleRatio: 1 }) {
  const { log, lines } = captureLog();
  log.level = level;
  const access = new AccessLog(log, settings);
  const layer = exchangeLayer({ log: requestLogSink(access) });
  return { log, lines, access, layer };
}

const ok = (body = 'hello'): ProxyResponse => ({ status: 200, headers: [], body: new BufferedBody([Buffer.from(body)]), flag: '-' });
const drain = (r: ProxyResponse) => new Promise<void>((resolve) => r.body!.pipe({ data: () => true, end: () => resolve(), abort: () => resolve() } satisfies BodySink));

t.test('enabled: one line per request with Envoy’s fields, whatever the log level', async (t) => {
  const { lines, layer } = setup('warn');
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const req = proxyRequest({
    conn,
    method: 'POST',
    authority: 'cart.shop:8080',
    path: '/cart/items?session=s3cr3t&token=abc',
    headers: ['X-Request-Id', 'req-1', 'User-Agent', 'curl/8.0', 'traceparent', `00-${traceId}-00f067aa0ba902b7-01`, 'Authorization', 'Bearer top-secret', 'Cookie', 'sid=hush'],
    body: new BufferedBody([Buffer.from('12345678')]),
    peer: { name: 'frontend', namespace: 'shop', app: 'frontend', version: 'v1' },
  });
  const response = await layer(async (r) => {
    await new Promise<void>((resolve) => r.body!.pipe({ data: () => true, end: () => resolve(), abort: () => resolve() }));
    return ok('hello world');
  })(req);
  await drain(response);
  t.equal(lines.length, 1);
  const line = lines[0]!;
  t.match(line, {
    level: 30,
    msg: 'request',
    direction: 'inbound',
    conn: 7,
    method: 'POST',
    authority: 'cart.shop:8080',
    path: '/cart/items',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    bytes_received: 8,
    bytes_sent: 11,
    upstream_host: '10.0.0.3:8080',
    downstream_remote_address: '10.0.0.2:40000',
    connection_security_policy: 'mutual_tls',
    peer_principal: CALLER,
    peer_workload: 'shop/frontend',
    request_id: 'req-1',
    trace_id: traceId,
    user_agent: 'curl/8.0',
  });
  t.ok(Date.parse(String(line.start_time)) > 0, 'start_time is a date');
  t.equal(typeof line.duration, 'number');
  const text = JSON.stringify(line);
  for (const secret of ['top-secret', 'sid=hush', 's3cr3t', 'abc', '12345678', 'hello world']) t.notOk(text.includes(secret), `never ${secret}: no credentials, query or body`);
});

t.test('a failed request has the status, flag and cause of the proxy’s answer, and the error', async (t) => {
  const { lines, layer } = setup('info');
  const err = new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'cannot connect upstream: ECONNREFUSED');
  await t.rejects(layer(async () => Promise.reject(err))(proxyRequest({ conn, grpc: true })));
  t.match(lines[0], { response_code: 200, response_flags: 'UF', grpc_status: '14', meshlet_error: 'upstream_connect_failure', error: /ECONNREFUSED/ });
});

t.test('sampled: a ratio of 0 logs nothing, 1 everything', async (t) => {
  const none = setup('info', { enabled: true, sampleRatio: 0 });
  for (let i = 0; i < 20; i++) await none.layer(async () => ({ status: 204, headers: [], body: undefined, flag: '-' }))(proxyRequest({ conn }));
  t.equal(none.lines.length, 0);
  const all = setup('info', { enabled: true, sampleRatio: 1 });
  for (let i = 0; i < 20; i++) await all.layer(async () => ({ status: 204, headers: [], body: undefined, flag: '-' }))(proxyRequest({ conn }));
  t.equal(all.lines.length, 20);
});

t.test('disabled: nothing at info; everything at debug, and a level changed at run time applies, both ways', async (t) => {
  const { log, lines, layer } = setup('info', { enabled: false, sampleRatio: 1 });
  const handler = layer(async () => ({ status: 204, headers: [], body: undefined, flag: '-' }));
  await handler(proxyRequest({ conn }));
  t.equal(lines.length, 0);
  log.level = 'debug';
  await handler(proxyRequest({ conn }));
  t.equal(lines.length, 1);
  t.match(lines[0], { level: 20, msg: 'request', response_code: 204 });
  log.level = 'info';
  await handler(proxyRequest({ conn }));
  t.equal(lines.length, 1, 'back at info: no line');
});

t.test('connections: a line for one that carried no HTTP; HTTP ones only at debug', async (t) => {
  const { log, lines, access } = setup('info');
  const outcome: ConnectionOutcome = { receivedBytes: 10, sentBytes: 20, flag: 'UC', reason: 'upstream_reset' };
  const handler = connectionLogLayer(access)(async () => outcome);
  t.equal(await handler({ ...conn, protocol: 'tcp' }), outcome);
  await handler({ ...conn, protocol: 'mesh-h2' });
  t.equal(lines.length, 1, 'the HTTP connection is not logged: its requests are');
  t.match(lines[0], { msg: 'connection', protocol: 'tcp', bytes_received: 10, bytes_sent: 20, response_flags: 'UC', reason: 'upstream_reset', peer_principal: CALLER, upstream_host: '10.0.0.3:8080' });
  log.level = 'debug';
  await handler({ ...conn, protocol: 'mesh-h2' });
  t.equal(lines.length, 2);
  t.match(lines[1], { protocol: 'mesh-h2' });
});

t.test('connections, disabled and not at debug: the layer passes straight through', async (t) => {
  const { lines, access } = setup('info', { enabled: false, sampleRatio: 1 });
  const answer = Promise.resolve({ receivedBytes: 0, sentBytes: 0, flag: '-' as const });
  t.equal(connectionLogLayer(access)(() => answer)({ ...conn, protocol: 'tcp' }), answer, 'the next handler’s own promise');
  t.same(lines, []);
});
