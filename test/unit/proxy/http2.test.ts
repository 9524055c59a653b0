import http2 from 'node:http2';
import t, { type Test } from 'tap';
import { h2App, h2Request, h2Session, type H2App } from '../../helpers/http.ts';
import { through, TOPOLOGIES, type Topology } from '../../helpers/http-sidecars.ts';
import { until } from './mtls-harness.ts';

// HTTP/2 (h2c with prior knowledge) from a node:http2 client through the proxy to a
// node:http2 app: resets in both directions, the app's stream limit, GOAWAY between
// requests, trailers. Through one sidecar and through a sidecar pair.

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function proxied(t: Test, topology: Topology, ...args: Parameters<typeof h2App>): Promise<{ app: H2App; session: http2.ClientHttp2Session }> {
  const app = await h2App(...args);
  t.teardown(() => app.close());
  const { port } = await through(t, topology, () => app.port);
  return { app, session: h2Session(t, port) };
}

/** Once the client's `stream` has reached the app (the one stream in `appStreams`), resets it with CANCEL; resolves with the app's stream once closed. */
async function cancelOnceAtApp(stream: http2.ClientHttp2Stream, appStreams: http2.ServerHttp2Stream[]): Promise<http2.ServerHttp2Stream> {
  await until(() => appStreams.length === 1, 'the stream at the app');
  const appStream = appStreams[0]!;
  const closed = new Promise((r) => appStream.once('close', r));
  stream.close(NGHTTP2_CANCEL);
  await closed;
  return appStream;
}

for (const topology of TOPOLOGIES) {
  t.test(topology === 'one' ? 'through one outbound sidecar' : 'through a sidecar pair over meshlet/h2 (mTLS)', async (t) => {
    t.test('a response with a body and trailers arrives whole; no Date is added', async (t) => {
      const { session } = await proxied(t, topology, (stream, headers) => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-path': String(headers[':path']) }, { waitForTrailers: true, sendDate: false } as http2.ServerStreamResponseOptions);
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }));
        stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
      });
      const r = await h2Request(session, { ':method': 'POST', ':path': '/pkg.S/M', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
      t.equal(r.status, 200);
      t.equal(r.headers['x-path'], '/pkg.S/M');
      t.same([...r.body], [0, 0, 0, 0, 2, 8, 1]);
      t.same({ status: r.trailers['grpc-status'], message: r.trailers['grpc-message'] }, { status: '0', message: 'fine' }, 'the trailers');
      t.equal(r.end, 'end');
      t.equal(r.headers.date, undefined, 'no Date: the app sent none');
    });

    t.test("mesh headers in the app's response never reach the client", async (t) => {
      const { session } = await proxied(t, topology, (stream) => {
        stream.respond({ ':status': 200, 'meshlet-peer-metadata': 'e30', 'meshlet-protocol': 'http1', 'x-kept': '1' });
        stream.end('ok');
      });
      const r = await h2Request(session, { ':method': 'GET', ':path': '/' });
      t.equal(r.status, 200);
      t.equal(r.headers['x-kept'], '1');
      t.same(Object.keys(r.headers).filter((n) => n.startsWith('meshlet-')), [], 'no meshlet-* header');
    });

    for (const [name, code] of [
      ['INTERNAL_ERROR', NGHTTP2_INTERNAL_ERROR],
      ['CANCEL', NGHTTP2_CANCEL],
    ] as const) {
      t.test(`the app resets its stream (${name}) after the response headers and some body: the client's stream is reset, not ended`, async (t) => {
        const { session } = await proxied(t, topology, (stream) => {
          // waitForTrailers: close() then sends RST_STREAM alone; without it node:http2
          // would end the stream (END_STREAM) first and the reset would go unseen.
          stream.respond({ ':status': 200 }, { waitForTrailers: true });
          stream.write('partial body', () => setTimeout(() => stream.close(code), 20));
        });
        const r = await h2Request(session, { ':path': '/reset-mid-body' });
        t.equal(r.status, 200, 'the response headers arrived');
        t.equal(r.end, 'reset', 'the stream ended with RST_STREAM, so the client knows the body is cut short');
        t.not(r.rstCode, NGHTTP2_NO_ERROR);
        t.equal(r.body.toString(), 'partial body', 'what the app sent before the reset arrived');
        // The session is still good for the next stream.
        t.equal((await h2Request(session, { ':path': '/after' })).status, 200);
      });
    }

    t.test("the client resets its stream: the app's stream is closed, aborted", async (t) => {
      const appStreams: http2.ServerHttp2Stream[] = [];
      // The stream's rstCode when its readable side ended: 0 for END_STREAM. (node:http2 also
      // ends the readable side of a stream reset with CANCEL, with the code already set.)
      let rstCodeAtEnd: number | undefined;
      const { session } = await proxied(t, topology, (stream) => {
        appStreams.push(stream);
        stream.once('end', () => (rstCodeAtEnd = stream.rstCode));
        stream.respond({ ':status': 200 });
        stream.write('streaming...');
        stream.on('data', () => {});
      });
      // waitForTrailers: close() then sends RST_STREAM alone (without it node:http2 ends the stream first).
      const stream = session.request({ ':method': 'POST', ':path': '/long' }, { endStream: false, waitForTrailers: true });
      stream.on('error', () => {});
      stream.write('request body, never ended');
      await new Promise((r) => stream.once('response', r));
      const appStream = await cancelOnceAtApp(stream, appStreams);
      t.equal(appStream.rstCode, NGHTTP2_CANCEL, "the app's stream was reset with the client's code");
      t.ok(appStream.aborted, "and is 'aborted'");
      t.not(rstCodeAtEnd, NGHTTP2_NO_ERROR, 'the app never got END_STREAM: the cut-short body is not taken for whole');
    });

    t.test("the client resets a GET before any response: the app's stream is reset with CANCEL", async (t) => {
      const appStreams: http2.ServerHttp2Stream[] = [];
      const { session } = await proxied(t, topology, (stream, headers) => {
        if (headers[':path'] === '/slow') appStreams.push(stream); // never answered
        else stream.respond({ ':status': 200 }, { endStream: true });
      });
      const stream = session.request({ ':path': '/slow' });
      stream.on('error', () => {});
      const appStream = await cancelOnceAtApp(stream, appStreams);
      t.equal(appStream.rstCode, NGHTTP2_CANCEL, "the app's stream was reset with CANCEL");
      t.equal((await h2Request(session, { ':path': '/after' })).status, 200, 'the session goes on');
    });

    const limited = (name: string, warm: boolean, body: boolean) =>
      t.test(`the app allows 2 concurrent streams; 10 concurrent client streams (${name}) all succeed`, async (t) => {
        let open = 0;
        let most = 0;
        const { app, session } = await proxied(
          t,
          topology,
          (stream, headers) => {
            open++;
            most = Math.max(most, open);
            stream.once('close', () => open--);
            stream.resume();
            stream.once('end', () =>
              setTimeout(() => {
                stream.respond({ ':status': 200 });
                stream.end(String(headers[':path']));
              }, 30),
            );
          },
          { settings: { maxConcurrentStreams: 2 } },
        );
        if (warm) t.equal((await h2Request(session, { ':path': '/warm-up' })).status, 200, 'one request first: the proxy knows the limit');
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => h2Request(session, { ':path': `/c${i}`, ...(body ? { ':method': 'POST' } : {}) }, body ? `body ${i}` : undefined)));
        t.same(
          results.map((r) => [r.status, r.body.toString()]),
          Array.from({ length: 10 }, (_, i) => [200, `/c${i}`]),
        );
        t.ok(most <= 2, `the app never had more than 2 streams open (${most})`);
        t.ok(app.streams >= 10);
      });
    limited('GET, on a cold session', false, false);
    limited('POST with bodies, on a warm session', true, true);
    limited('POST with bodies, on a cold session', false, true);

    type Answer = (stream: http2.ServerHttp2Stream, session: http2.ServerHttp2Session, n: number) => void;
    const goaways: Array<[string, Answer]> = [
      // Graceful: the app's server closes the session once the response is sent.
      [
        'right after a response',
        (stream, session) => {
          stream.respond({ ':status': 200 });
          stream.end('ok', () => session.close());
        },
      ],
      // The race: the GOAWAY answers the next stream, which it says was not processed.
      [
        'as the next request arrives (that stream not processed)',
        (stream, session, n) => {
          if (n % 2 === 1) {
            session.goaway(NGHTTP2_NO_ERROR, stream.id! - 2);
            return;
          }
          stream.respond({ ':status': 200 });
          stream.end('ok');
        },
      ],
    ];
    for (const [name, answer] of goaways) {
      t.test(`the app sends GOAWAY ${name}: the next requests still succeed`, async (t) => {
        const perSession = new WeakMap<http2.ServerHttp2Session, number>();
        const { app, session } = await proxied(t, topology, (stream, _h, s) => {
          const n = perSession.get(s) ?? 0;
          perSession.set(s, n + 1);
          answer(stream, s, n);
        });
        for (let i = 0; i < 4; i++) {
          const r = await h2Request(session, { ':path': `/g${i}` });
          t.same([r.status, r.end, r.body.toString()], [200, 'end', 'ok'], `request ${i}`);
          await sleep(5);
        }
        t.ok(app.sessions >= 2, `the proxy opened new sessions after the GOAWAYs (${app.sessions})`);
      });
    }
  });
}
