import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { h2App } from '../../helpers/http.ts';
import { through, TOPOLOGIES } from '../../helpers/http-sidecars.ts';

// A gRPC server-streaming call cut short through the proxy, in both directions, with
// @grpc/grpc-js at the ends: the client cancels and the server sees the cancellation
// (the client's RST_STREAM crossed every hop); the server resets and the client sees the
// reset with its code. Through one sidecar and through a sidecar pair.
//
// How long the cancellation takes to reach the server is printed as a diagnostic, not
// asserted (speed is measured in bench/, never in a timed test): the 5 s bound only turns
// a lost RST_STREAM into a failure instead of a hang. On loopback (2-core machine, eight
// runs) it took 2-7 ms through either topology, and 6-18 ms for whichever topology runs
// first in the file (code still warming up).

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

// One server-streaming method on raw bytes: no .proto needed.
const TICK = {
  path: '/meshlet.test.Ticker/Tick',
  requestStream: false,
  responseStream: true,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;
const Ticker = grpc.makeGenericClientConstructor({ Tick: TICK }, 'Ticker');

/** The result of a stream call as the client saw it. */
interface Outcome {
  messages: string[];
  status: grpc.StatusObject;
}

/** Calls Tick on `port` (h2c), calls `onMessage` with each message until the call ends. */
function tick(t: Test, port: number, onMessage: (call: grpc.ClientReadableStream<Buffer>, n: number) => void): Promise<Outcome> {
  const client = new Ticker(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const call = (client as unknown as { Tick(req: Buffer): grpc.ClientReadableStream<Buffer> }).Tick(Buffer.from('go'));
  const messages: string[] = [];
  call.on('data', (m: Buffer) => {
    messages.push(m.toString());
    onMessage(call, messages.length);
  });
  call.on('error', () => {}); // the status says it
  return new Promise((resolve) => call.on('status', (status: grpc.StatusObject) => resolve({ messages, status })));
}

/** A grpc-js server whose Tick writes a message every 20 ms until the call is cancelled. */
async function tickingServer(t: Test): Promise<{ port: number; cancelled: Promise<number> }> {
  let cancelledAt!: (at: number) => void;
  const cancelled = new Promise<number>((r) => (cancelledAt = r));
  const server = new grpc.Server();
  server.addService(
    { Tick: TICK },
    {
      Tick(call: grpc.ServerWritableStream<Buffer, Buffer>) {
        let n = 0;
        const timer = setInterval(() => call.write(Buffer.from(`tick ${++n}`)), 20);
        call.on('cancelled', () => {
          clearInterval(timer);
          cancelledAt(performance.now());
        });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  return { port, cancelled };
}

/** A gRPC length-prefixed message. */
const frame = (text: string) => {
  const payload = Buffer.from(text);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
};

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

for (const topology of TOPOLOGIES) {
  t.test(topology === 'one' ? 'through one outbound sidecar' : 'through a sidecar pair over meshlet/h2 (mTLS)', async (t) => {
    t.test('the client cancels a server-streaming call after two messages: the server sees the call cancelled', async (t) => {
      const server = await tickingServer(t);
      const { port } = await through(t, topology, () => server.port);
      let cancelAt = 0;
      const outcome = tick(t, port, (call, n) => {
        if (n !== 2) return;
        cancelAt = performance.now();
        call.cancel();
      });
      const { messages, status } = await outcome;
      t.same(messages.slice(0, 2), ['tick 1', 'tick 2'], 'two messages arrived before the cancel');
      t.equal(status.code, grpc.status.CANCELLED, 'the client reports its own cancel');
      // Generous bound so a lost RST_STREAM fails the test instead of hanging it.
      const seenAt = await within(server.cancelled, 5000, 'the server sees the cancel');
      t.pass('the server saw the call cancelled');
      t.comment(`cancel → server 'cancelled': ${(seenAt - cancelAt).toFixed(1)} ms (${topology})`);
    });

    // INTERNAL_ERROR is also what the proxy sends for a response cut short for any other
    // reason; ENHANCE_YOUR_CALM is one it never makes up, so only mirroring gets it there.
    for (const [name, rstCode, code, details] of [
      ['INTERNAL_ERROR', NGHTTP2_INTERNAL_ERROR, grpc.status.INTERNAL, /RST_STREAM with code 2/],
      ['ENHANCE_YOUR_CALM', NGHTTP2_ENHANCE_YOUR_CALM, grpc.status.RESOURCE_EXHAUSTED, /Bandwidth exhausted/],
    ] as const) {
      t.test(`the server resets its stream (${name}) mid-response: the client sees the reset and its code, not a clean end`, async (t) => {
        // grpc-js servers have no way to reset a stream, so the server is a node:http2 app
        // speaking gRPC's framing: headers, two messages, then RST_STREAM.
        const app = await h2App((stream) => {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.write(frame('tick 1'));
          stream.write(frame('tick 2'), () => setTimeout(() => stream.close(rstCode), 20));
        });
        t.teardown(() => app.close());
        const { port } = await through(t, topology, () => app.port);
        const { messages, status } = await within(
          tick(t, port, () => {}),
          5000,
          'the client sees the reset',
        );
        t.same(messages, ['tick 1', 'tick 2'], 'the messages sent before the reset arrived');
        t.equal(status.code, code, `${grpc.status[code]}: what grpc-js makes of RST_STREAM ${name}`);
        t.match(status.details, details, "the app's code crossed every hop");
      });
    }
  });
}
