import t, { type Test } from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import { RequestAbort } from '../../../src/pipeline/abort.ts';
import type { AcceptedConnection } from '../../../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { errorResponse } from '../../../src/proxy/http/error-response.ts';
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

/** The line logged for a request whose handler throws `err`, and that the error still reached the caller. */
async function lineFor(t: Test, err: Error, over: Partial<ProxyRequest> = {}) {
  const { log, lines } = capture('debug');
  const handler = requestLogLayer(log)(async () => {
    throw err;
  });
  await t.rejects(handler(proxyRequest({ conn, path: '/x', ...over })), err);
  await flush();
  t.equal(lines.length, 1);
  return lines[0];
}

t.test('at debug, a failed request is logged with the answer the proxy makes for it, and its error still reaches the caller', async (t) => {
  const refused = new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'cannot connect upstream: ECONNREFUSED');
  t.match(await lineFor(t, refused), { msg: 'request', status: 503, flag: 'UF', cause: 'upstream_connect_failure', err: /ECONNREFUSED/ });
  const timeout = new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'no connection within 1000 ms');
  t.match(await lineFor(t, timeout), { status: 503, flag: 'UF' }, 'a connect timeout is a connect failure (UF)');
  t.match(await lineFor(t, new MeshletError('MESHLET_ERR_UPSTREAM_TIMEOUT', 'no response in time')), { status: 504, flag: 'UT' });
  t.match(await lineFor(t, refused, { grpc: true }), { status: 200, flag: 'UF' }, 'gRPC is answered 200 with grpc-status');
  t.match(await lineFor(t, new Error('upstream went away')), { status: 502, flag: 'UPE', cause: 'proxy_error', err: 'upstream went away' }, 'anything unclassified is the proxy’s own 502');
  // Each answer is the one error-response.ts makes.
  for (const [err, grpc] of [[refused, false], [refused, true], [new Error('x'), false]] as const) {
    const line = await lineFor(t, err, { grpc });
    const answer = errorResponse(err, grpc);
    t.same([line?.status, line?.flag], [answer.status, answer.flag], `the same status and flag as the answer (${err.message}, grpc ${grpc})`);
  }
});

t.test('at debug, a request whose client went away is logged DC, without a status: nobody was answered', async (t) => {
  const gone = new RequestAbort();
  gone.abort();
  const line = await lineFor(t, new Error('the client reset its stream'), { abort: gone });
  t.match(line, { flag: 'DC' });
  t.equal(line?.status, undefined, 'no status');
});
