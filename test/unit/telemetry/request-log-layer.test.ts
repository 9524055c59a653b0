import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import type { AcceptedConnection } from '../../../src/proxy/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/proxy/http/exchange.ts';
import { requestLogLayer } from '../../../src/telemetry/request-log-layer.ts';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level }, sink), lines };
}

const conn = {
  id: 7,
  direction: 'outbound',
  peer: { address: '10.0.0.2', port: 40000 },
  origDst: { address: '10.0.0.3', port: 8080 },
  security: 'none',
} as unknown as AcceptedConnection;

const request = (): ProxyRequest => ({
  conn,
  protocol: 'http1',
  method: 'GET',
  authority: 'app:8080',
  path: '/x',
  scheme: 'http',
  headers: [],
  hostName: 'Host',
  body: undefined,
  trailers: () => [],
  grpc: false,
  signal: new AbortController().signal,
  onContinue: () => {},
});
const response: ProxyResponse = { status: 204, headers: [], body: undefined, trailers: () => [], flag: '-' };
const flush = () => new Promise((r) => setImmediate(r));

t.test('at info, a request passes straight through and nothing is logged', async (t) => {
  const { log, lines } = capture('info');
  const answer = Promise.resolve(response);
  const handler = requestLogLayer(log)(() => answer);
  t.equal(handler(request()), answer, 'the next handler’s own promise, not a wrapper');
  await flush();
  t.same(lines, []);
});

t.test('at debug, one line per request with its outcome; a level changed at run time applies', async (t) => {
  const { log, lines } = capture('info');
  const handler = requestLogLayer(log)(async () => response);
  await handler(request());
  log.level = 'debug';
  await handler(request());
  await flush();
  t.equal(lines.length, 1, 'only the request made after the level changed');
  t.match(lines[0], { msg: 'request', direction: 'outbound', conn: 7, method: 'GET', path: '/x', status: 204, flag: '-', dst: '10.0.0.3:8080' });
});

t.test('at debug, a failed request is logged and its error still reaches the caller', async (t) => {
  const { log, lines } = capture('debug');
  const handler = requestLogLayer(log)(async () => {
    throw new Error('upstream went away');
  });
  await t.rejects(handler(request()), /upstream went away/);
  await flush();
  t.match(lines[0], { msg: 'request', err: 'upstream went away', flag: '-' });
});
