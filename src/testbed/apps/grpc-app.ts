// A gRPC server and client (@grpc/grpc-js, plaintext h2c) for the L7 end-to-end tests,
// on the service in echo.proto next to this file. Both print JSON lines on stdout.
//
//   server --port P[,P...] [--host ::]
//       prints {"listening": P} per port; {"started": "Slow", "id"} when a Slow call
//       begins and {"cancelled": "Slow", "id"} when one is cancelled (the client's
//       RST_STREAM, or its deadline, reached the server).
//   client --host H --port P [--calls unary,server-stream,client-stream,fail,deadline,cancel]
//          [--stream-count N] [--stream-size BYTES] [--timeout MS]
//       makes each call in turn and prints one object {target, calls: {NAME: result}}, where
//       a result is {ok, code, codeName, details, headers, trailers, ...what the call
//       checked}. headers/trailers hold the string-valued response metadata. The exit code
//       is 0 whenever the calls ran, whatever their outcome: the test judges the result.
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = path.join(path.dirname(fileURLToPath(import.meta.url)), 'echo.proto');

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    calls: { type: 'string', default: 'unary,server-stream,client-stream,fail,deadline,cancel' },
    'stream-count': { type: 'string', default: '64' },
    'stream-size': { type: 'string', default: '16384' },
    timeout: { type: 'string', default: '10000' },
  },
});

const print = (value: unknown) => console.log(JSON.stringify(value));

interface EchoReply {
  message: string;
  seq: number;
  payload: Buffer;
  metadata_json: string;
  count: number;
  sha256: string;
  peer: string;
}

type Callback = (err: Partial<grpc.StatusObject> | null, reply?: Partial<EchoReply>, trailer?: grpc.Metadata) => void;

const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, defaults: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as {
  meshlet: { testbed: { Echo: grpc.ServiceClientConstructor } };
};
const Echo = proto.meshlet.testbed.Echo;

/** String-valued metadata as a plain object (binary `-bin` values are left out). */
function plain(metadata: grpc.Metadata | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, vals] of Object.entries(metadata?.toJSON() ?? {})) {
    const strings = vals.filter((v): v is string => typeof v === 'string');
    if (strings.length) out[key] = strings;
  }
  return out;
}

function metadataOf(pairs: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) m.set(k, v);
  return m;
}

// --- server -------------------------------------------------------------------------

function serve(): void {
  const handlers: grpc.UntypedServiceImplementation = {
    Unary(call: grpc.ServerUnaryCall<{ message: string; payload: Buffer }, EchoReply>, callback: Callback) {
      call.sendMetadata(metadataOf({ 'x-echo-header': 'unary' }));
      callback(
        null,
        {
          message: call.request.message,
          payload: call.request.payload,
          metadata_json: JSON.stringify(plain(call.metadata)),
          peer: call.getPeer(),
          sha256: createHash('sha256').update(call.request.payload).digest('hex'),
        },
        metadataOf({ 'x-echo-trailer': 'unary-done' }),
      );
    },

    ServerStream(call: grpc.ServerWritableStream<{ count: number; size: number }, Partial<EchoReply>>) {
      const hash = createHash('sha256');
      const { count, size } = call.request;
      let seq = 0;
      let cancelled = false;
      call.on('cancelled', () => (cancelled = true));
      const writeMore = () => {
        while (!cancelled && seq < count) {
          const payload = randomBytes(size);
          hash.update(payload);
          const more = call.write({ seq: seq++, payload, metadata_json: seq === 1 ? JSON.stringify(plain(call.metadata)) : '' });
          if (!more) {
            call.once('drain', writeMore);
            return;
          }
        }
        if (!cancelled) call.end(metadataOf({ 'x-sha256': hash.digest('hex'), 'x-count': String(count) }));
      };
      writeMore();
    },

    ClientStream(call: grpc.ServerReadableStream<{ message: string; payload: Buffer }, EchoReply>, callback: Callback) {
      const hash = createHash('sha256');
      const messages: string[] = [];
      call.on('data', (req: { message: string; payload: Buffer }) => {
        hash.update(req.payload);
        messages.push(req.message);
      });
      call.on('end', () =>
        callback(
          null,
          { count: messages.length, message: messages.join(','), sha256: hash.digest('hex'), metadata_json: JSON.stringify(plain(call.metadata)) },
          metadataOf({ 'x-echo-trailer': 'client-stream-done' }),
        ),
      );
      call.on('error', () => {});
    },

    Fail(call: grpc.ServerUnaryCall<{ code: number; message: string }, EchoReply>, callback: Callback) {
      callback({ code: call.request.code, details: call.request.message, metadata: metadataOf({ 'x-fail-detail': 'from-the-app' }) });
    },

    Slow(call: grpc.ServerUnaryCall<{ delay_ms: number; id: string }, EchoReply>, callback: Callback) {
      const { delay_ms: delay, id } = call.request;
      print({ started: 'Slow', id });
      call.sendMetadata(metadataOf({ 'x-echo-header': 'slow' }));
      const timer = setTimeout(() => callback(null, { message: `slept ${delay}` }), delay);
      call.on('cancelled', () => {
        clearTimeout(timer);
        print({ cancelled: 'Slow', id });
      });
    },
  };
  const ports = (values.port ?? '').split(',').map(Number);
  for (const port of ports) {
    const server = new grpc.Server();
    server.addService(Echo.service, handlers);
    const host = values.host.includes(':') ? `[${values.host}]` : values.host;
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) {
        console.error(err.message);
        process.exit(1);
      }
      print({ listening: bound });
    });
  }
}

// --- client -------------------------------------------------------------------------

/** What the client subcommand prints per call (the tests read it). */
export interface CallResult {
  ok: boolean;
  code: number;
  codeName: string;
  details: string;
  headers: Record<string, string[]>;
  trailers: Record<string, string[]>;
  [more: string]: unknown;
}

type AnyCall = grpc.ClientUnaryCall | grpc.ClientReadableStream<EchoReply> | grpc.ClientWritableStream<unknown>;

/** Collects a call's response headers and final status into a CallResult. */
function observe(call: AnyCall, extra: () => Record<string, unknown> = () => ({})): Promise<CallResult> {
  let headers: Record<string, string[]> = {};
  call.on('metadata', (m: grpc.Metadata) => (headers = plain(m)));
  return new Promise((resolve) => {
    call.on('status', (status: grpc.StatusObject) => {
      // 'status' can come before the unary callback or the last 'data'; let those run first.
      setImmediate(() =>
        resolve({
          ok: status.code === grpc.status.OK,
          code: status.code,
          codeName: grpc.status[status.code] ?? String(status.code),
          details: status.details,
          headers,
          trailers: plain(status.metadata),
          ...extra(),
        }),
      );
    });
    (call as NodeJS.EventEmitter).on('error', () => {}); // reported through 'status'
  });
}

async function client(): Promise<void> {
  const host = values.host.includes(':') ? `[${values.host}]` : values.host;
  const target = `${host}:${values.port}`;
  // No retries of any kind: the test must see what the first attempt got.
  const stub = new Echo(target, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 }) as unknown as Record<string, (...args: unknown[]) => AnyCall>;
  const timeout = Number(values.timeout);
  const deadline = () => new Date(Date.now() + timeout);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const calls: Record<string, CallResult> = {};

  const kinds: Record<string, () => Promise<CallResult>> = {
    unary: () => {
      const payload = randomBytes(100_000); // more than one DATA frame and the default 64 KiB window
      let reply: EchoReply | undefined;
      const meta = metadataOf({ 'x-client-meta': 'from-the-client' });
      const call = stub.Unary!({ message: 'hello unary', payload }, meta, { deadline: deadline() }, (_err: unknown, r: EchoReply) => (reply = r));
      return observe(call, () => ({
        message: reply?.message,
        payloadIntact: reply !== undefined && reply.sha256 === sha(payload) && sha(reply.payload) === sha(payload),
        serverSawMetadata: reply ? (JSON.parse(reply.metadata_json) as Record<string, string[]>) : undefined,
      }));
    },
    'server-stream': () => {
      const count = Number(values['stream-count']);
      const size = Number(values['stream-size']);
      const hash = createHash('sha256');
      const seqs: number[] = [];
      let serverSawMetadata: Record<string, string[]> | undefined;
      const call = stub.ServerStream!({ count, size }, new grpc.Metadata(), { deadline: deadline() }) as grpc.ClientReadableStream<EchoReply>;
      call.on('data', (r: EchoReply) => {
        seqs.push(r.seq);
        hash.update(r.payload);
        if (r.metadata_json) serverSawMetadata = JSON.parse(r.metadata_json) as Record<string, string[]>;
      });
      return observe(call, () => ({
        received: seqs.length,
        inOrder: seqs.every((s, i) => s === i),
        sha256: hash.digest('hex'),
        serverSawMetadata,
      }));
    },
    'client-stream': () => {
      let reply: EchoReply | undefined;
      const call = stub.ClientStream!(new grpc.Metadata(), { deadline: deadline() }, (_err: unknown, r: EchoReply) => (reply = r)) as grpc.ClientWritableStream<unknown>;
      const hash = createHash('sha256');
      const n = 20;
      for (let i = 0; i < n; i++) {
        const payload = randomBytes(8192);
        hash.update(payload);
        call.write({ message: `m${i}`, payload });
      }
      call.end();
      const expected = hash.digest('hex');
      return observe(call, () => ({
        sent: n,
        count: reply?.count,
        messages: reply?.message,
        payloadIntact: reply?.sha256 === expected,
        serverSawMetadata: reply ? (JSON.parse(reply.metadata_json) as Record<string, string[]>) : undefined,
      }));
    },
    fail: () => {
      const call = stub.Fail!({ code: grpc.status.NOT_FOUND, message: 'widget 42 not found: ünïcödé 100%, line\tand more' }, new grpc.Metadata(), { deadline: deadline() }, () => {});
      return observe(call, () => ({ requestedCode: grpc.status.NOT_FOUND, requestedDetails: 'widget 42 not found: ünïcödé 100%, line\tand more' }));
    },
    deadline: () => {
      const id = `deadline-${randomBytes(4).toString('hex')}`;
      const call = stub.Slow!({ delay_ms: 5000, id }, new grpc.Metadata(), { deadline: new Date(Date.now() + 700) }, () => {});
      return observe(call, () => ({ id }));
    },
    cancel: () => {
      // Cancelled once the server has sent its headers, so the call surely reached it.
      const id = `cancel-${randomBytes(4).toString('hex')}`;
      const call = stub.Slow!({ delay_ms: 5000, id }, new grpc.Metadata(), { deadline: deadline() }, () => {}) as grpc.ClientUnaryCall;
      call.on('metadata', () => setTimeout(() => call.cancel(), 100));
      return observe(call, () => ({ id }));
    },
  };

  for (const name of values.calls.split(',')) {
    const kind = kinds[name];
    if (!kind) {
      console.error(`unknown call ${name}; known: ${Object.keys(kinds).join(', ')}`);
      process.exit(2);
    }
    calls[name] = await kind();
  }
  (stub as unknown as grpc.Client).close();
  print({ target, calls });
}

const modes: Record<string, () => void | Promise<void>> = { server: serve, client };
const mode = modes[positionals[0] ?? ''];
if (!mode) {
  console.error('usage: grpc-app server|client ...');
  process.exit(2);
}
await mode();
