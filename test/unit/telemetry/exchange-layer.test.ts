import t from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import { RequestAbort } from '../../../src/pipeline/abort.ts';
import { bodyAbort, BufferedBody, PushBody, type Body, type BodySink } from '../../../src/pipeline/body.ts';
import type { AcceptedConnection } from '../../../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { errorResponse } from '../../../src/proxy/http/error-response.ts';
import { exchangeLayer, type FinishedExchange } from '../../../src/telemetry/exchange-layer.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

// The layer that follows each request to the end of its response, with fake inner
// handlers: what it reports, when, and that it changes nothing of what passes through.

const conn = { id: 1, direction: 'outbound', security: 'none' } as unknown as AcceptedConnection;

function recorder() {
  const finished: FinishedExchange[] = [];
  let started = 0;
  const layer = exchangeLayer({ metrics: { started: () => void started++, finished: (ex) => void finished.push({ ...ex, requestBytes: ex.requestBytes, responseBytes: ex.responseBytes }) } });
  return { layer, finished, started: () => started };
}

/** Reads a body to its end: the chunks, the trailers, or the abort. */
function read(body: Body): Promise<{ chunks: Buffer[]; trailers?: string[]; aborted?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sink: BodySink = {
      data: (c) => (chunks.push(c), true),
      end: (trailers) => resolve({ chunks, trailers }),
      abort: (aborted) => resolve({ chunks, aborted }),
    };
    body.pipe(sink);
  });
}

t.test('no sink: the layer is not there at all', async (t) => {
  const inner = async () => ({ status: 200, headers: [], body: undefined, flag: '-' as const });
  t.equal(exchangeLayer({})(inner), inner);
});

t.test('a bodiless response is reported once, when it arrives', async (t) => {
  const r = recorder();
  const response: ProxyResponse = { status: 204, headers: [], body: undefined, flag: '-' };
  const got = await r.layer(async () => response)(proxyRequest({ conn }));
  t.equal(got, response, 'passed on as it is');
  t.equal(r.started(), 1);
  t.equal(r.finished.length, 1);
  t.match(r.finished[0], { status: 204, flag: '-', grpcStatus: '', requestBytes: 0, responseBytes: 0, cause: '' });
  t.ok(r.finished[0]!.durationMs >= 0);
});

t.test('a response body is counted as it flows and reported at its end, with gRPC status from the trailers', async (t) => {
  const r = recorder();
  const producer = { pause() {}, resume() {}, cancel() {} };
  const upstream = new PushBody(producer);
  const handler = r.layer(async () => ({ status: 200, headers: ['content-type', 'application/grpc'], body: upstream, flag: '-' }));
  const response = await handler(proxyRequest({ conn, grpc: true }));
  t.not(response.body, upstream, 'the body is the counting one');
  const reading = read(response.body!);
  upstream.push(Buffer.from('abc'));
  upstream.push(Buffer.from('de'));
  t.equal(r.finished.length, 0, 'not before the body ends');
  upstream.finish(['grpc-status', '5']);
  const { chunks, trailers } = await reading;
  t.equal(Buffer.concat(chunks).toString(), 'abcde', 'the bytes pass unchanged');
  t.same(trailers, ['grpc-status', '5'], 'and the trailers');
  t.equal(r.finished.length, 1);
  t.match(r.finished[0], { status: 200, grpcStatus: '5', responseBytes: 5, flag: '-' });
});

t.test('a trailers-only gRPC answer has its status in the headers', async (t) => {
  const r = recorder();
  await r.layer(async () => ({ status: 200, headers: ['grpc-status', '14'], body: undefined, flag: '-' }))(proxyRequest({ conn, grpc: true }));
  t.equal(r.finished[0]?.grpcStatus, '14');
  await r.layer(async () => ({ status: 200, headers: ['grpc-status', '14'], body: undefined, flag: '-' }))(proxyRequest({ conn }));
  t.equal(r.finished[1]?.grpcStatus, '', 'not read for a request that is not gRPC');
});

t.test('a request body is counted on its way upstream', async (t) => {
  const r = recorder();
  const body = new BufferedBody([Buffer.from('hello'), Buffer.from(' world')]);
  let seen = '';
  const handler = r.layer(async (req: ProxyRequest) => {
    t.equal(req.body?.length, 11, 'its declared length is the inner body’s');
    seen = Buffer.concat((await read(req.body!)).chunks).toString();
    return { status: 201, headers: [], body: undefined, flag: '-' };
  });
  await handler(proxyRequest({ conn, method: 'POST', body }));
  t.equal(seen, 'hello world');
  t.match(r.finished[0], { status: 201, requestBytes: 11 });
});

t.test("a failed request is reported with the status and flag of the proxy's answer, and the error still reaches the caller", async (t) => {
  const cases: Array<[Error, boolean]> = [
    [new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused'), false],
    [new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused'), true],
    [new MeshletError('MESHLET_ERR_UPSTREAM_TIMEOUT', 'slow'), false],
    [new Error('something else'), false],
  ];
  for (const [err, grpc] of cases) {
    const r = recorder();
    await t.rejects(r.layer(async () => Promise.reject(err))(proxyRequest({ conn, grpc })), err);
    const answer = errorResponse(err, grpc);
    const ex = r.finished[0]!;
    t.same([ex.status, ex.flag], [answer.status, answer.flag], `${err.message}, grpc ${grpc}: what the client is answered`);
    t.equal(ex.cause !== '', true, 'with the cause');
    if (grpc) t.equal(ex.grpcStatus, '14', 'UNAVAILABLE for gRPC');
    t.equal(ex.error, err);
  }
});

t.test('a request whose client went away is DC with no status: nobody was answered', async (t) => {
  const r = recorder();
  const gone = new RequestAbort();
  gone.abort();
  await t.rejects(r.layer(async () => Promise.reject(new Error('reset')))(proxyRequest({ conn, abort: gone })));
  t.match(r.finished[0], { status: 0, flag: 'DC' });
});

t.test('a response body cut short upstream is UC; given up because the client went, DC', async (t) => {
  const r = recorder();
  const upstream = new PushBody({ pause() {}, resume() {}, cancel() {} });
  const response = await r.layer(async () => ({ status: 200, headers: [], body: upstream, flag: '-' }))(proxyRequest({ conn }));
  const reading = read(response.body!);
  upstream.push(Buffer.from('partial'));
  upstream.fail(bodyAbort('upstream reset'));
  t.ok((await reading).aborted, 'the reader sees the abort');
  t.match(r.finished[0], { status: 200, flag: 'UC', responseBytes: 7 });

  const client = new RequestAbort();
  const cancelled: string[] = [];
  const second = await r.layer(async () => ({ status: 200, headers: [], body: new PushBody({ pause() {}, resume() {}, cancel: (e) => void cancelled.push(e.message) }), flag: '-' }))(
    proxyRequest({ conn, abort: client }),
  );
  client.abort();
  second.body!.cancel(bodyAbort('the client went away'));
  t.same(cancelled, ['the client went away'], 'the cancel reaches the upstream body');
  t.match(r.finished[1], { flag: 'DC' });
  t.equal(r.finished.length, 2, 'each exchange reported once');
});

t.test('a body not to be sent (HEAD, 204) is given up without a flag', async (t) => {
  const r = recorder();
  const response = await r.layer(async () => ({ status: 200, headers: [], body: new BufferedBody([Buffer.from('x')]), flag: '-' }))(proxyRequest({ conn, method: 'HEAD' }));
  response.body!.cancel(bodyAbort('a response to HEAD has no body'));
  t.match(r.finished[0], { status: 200, flag: '-', responseBytes: 0 });
});
