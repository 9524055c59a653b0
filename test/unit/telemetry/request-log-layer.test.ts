import t from 'tap';
import type { AcceptedConnection } from '../../../src/pipeline/connection.ts';
import type { ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { requestLogLayer } from '../../../src/telemetry/request-log-layer.ts';
import { captureLog } from '../../helpers/capture-log.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

function capture(level: string) {
  const captured = captureLog();
  captured.log.level = level;
  return captured;
}

const conn = {
  id: 7,
  direction: 'outbound',
  peer: { address: '10.0.0.2', port: 40000 },
  origDst: { address: '10.0.0.3', port: 8080 },
  security: 'none',
} as unknown as AcceptedConnection;

const request = () => proxyRequest({ conn, path: '/x' });
const response: ProxyResponse = { status: 204, headers: [], body: undefined, flag: '-' };
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
