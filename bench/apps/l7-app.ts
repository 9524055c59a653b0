// The L7 scenario's app server: the same one process behind every mode (direct, the
// meshlet pairs, the nginx and haproxy pairs), built to cost little, so that on a small
// machine the proxies, not the app, decide the figures. Bodies are allocated once and
// written as they are; nothing is parsed beyond what the servers must.
//
//   server --h1-port P --h2-port Q --grpc-port R [--host H] [--body BYTES]
//     P  HTTP/1.1 (node:http): every request is answered 200 with a fixed body of
//        BYTES (1 KiB by default), Content-Length, keep-alive kept for 10 minutes.
//     Q  HTTP/2 cleartext, prior knowledge (node:http2): every stream the same 200 and body.
//     R  gRPC (@grpc/grpc-js, HTTP/2 cleartext): unary method /meshlet.bench.Bench/Call
//        answering a fixed BYTES-byte message with status OK. Messages are raw bytes
//        (identity serializers: no protobuf encoding on either side), so the server does
//        gRPC's framing, headers and grpc-status trailers and nothing more.
//
//   grpc-check --host H --port P [--body BYTES]
//     one unary call with @grpc/grpc-js as a client; prints {"ok":true,...} when the
//     answer is the BYTES-byte message with status OK (proof that a path carries gRPC,
//     trailers included; h2load counts HTTP statuses only).
//
// Prints one JSON line when listening (server) or with its result (grpc-check).
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';

export const GRPC_PATH = '/meshlet.bench.Bench/Call';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    'h1-port': { type: 'string', default: '0' },
    'h2-port': { type: 'string', default: '0' },
    'grpc-port': { type: 'string', default: '0' },
    body: { type: 'string', default: '1024' },
    timeout: { type: 'string', default: '10000' },
  },
});

const bodyBytes = Number(values.body);
const BODY = Buffer.alloc(bodyBytes, 0x62);
const identity = (b: Buffer) => b;
const method = {
  path: GRPC_PATH,
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
} as const;

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: values.host, port, ipv6Only: false }, () => resolve((server.address() as net.AddressInfo).port));
  });
}

async function serve(): Promise<void> {
  const h1Headers = { 'content-type': 'application/octet-stream', 'content-length': String(bodyBytes) };
  const h1 = http.createServer({ noDelay: true, keepAliveTimeout: 600_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    // Any request body is read and dropped (the benchmark sends none).
    req.resume();
    res.writeHead(200, h1Headers);
    res.end(BODY);
  });
  // Keep-alive connections from the proxies' pools stay up between runs.
  h1.keepAliveTimeout = 600_000;

  const h2Headers = { ':status': 200, 'content-type': 'application/octet-stream', 'content-length': String(bodyBytes) };
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  h2.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.resume();
    stream.respond(h2Headers);
    stream.end(BODY);
  });
  h2.on('sessionError', () => {});

  const grpcServer = new grpc.Server({ 'grpc.max_concurrent_streams': 1000 });
  grpcServer.addService(
    { Call: method },
    { Call: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, BODY) },
  );
  const h1Port = await listen(h1, Number(values['h1-port']));
  const h2Port = await listen(h2, Number(values['h2-port']));
  const host = values.host!.includes(':') ? `[${values.host}]` : values.host;
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${host}:${values['grpc-port']}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  console.log(JSON.stringify({ listening: { h1: h1Port, h2: h2Port, grpc: grpcPort }, bodyBytes, grpcPath: GRPC_PATH }));
}

async function grpcCheck(): Promise<void> {
  const host = values.host!.includes(':') ? `[${values.host}]` : values.host;
  const client = new grpc.Client(`${host}:${values.port}`, grpc.credentials.createInsecure());
  const deadline = new Date(Date.now() + Number(values.timeout));
  const result = await new Promise<{ ok: boolean; error?: string; bytes?: number }>((resolve) => {
    client.makeUnaryRequest(GRPC_PATH, identity, identity, Buffer.alloc(64, 0x61), new grpc.Metadata(), { deadline }, (err, reply) => {
      if (err) resolve({ ok: false, error: `grpc status ${err.code}: ${err.details}` });
      else if (reply?.length !== bodyBytes) resolve({ ok: false, error: `answer of ${reply?.length} bytes, expected ${bodyBytes}` });
      else resolve({ ok: true, bytes: reply.length });
    });
  });
  client.close();
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

switch (positionals[0]) {
  case 'server':
    await serve();
    break;
  case 'grpc-check':
    await grpcCheck();
    break;
  default:
    console.error('usage: l7-app server|grpc-check [options]');
    process.exit(2);
}
