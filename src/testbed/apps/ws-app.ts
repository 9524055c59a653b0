// A WebSocket echo server and client (the `ws` package) for the L7 end-to-end tests.
// Both print JSON lines on stdout.
//
//   server --port P [--host ::]
//       prints {"listening": P}; per connection {"upgrade": {url, rawHeaders}} (the
//       upgrade request as it arrived). To each client it first sends one text message
//       {"hello": {url, rawHeaders}}, then echoes every message back as it came (text as
//       text, binary as binary). A plain GET gets 426.
//   client --host H --port P [--path /chat] [--messages N] [--timeout MS]
//       connects, reads the hello, sends N messages (text and binary, up to 256 KiB)
//       one at a time, checks each echo, closes with 1000 and waits for the close. Prints
//       {ok, error?, status, responseRawHeaders, hello, echoed, closeCode}.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    path: { type: 'string', default: '/chat' },
    messages: { type: 'string', default: '10' },
    timeout: { type: 'string', default: '10000' },
  },
});

const print = (value: unknown) => console.log(JSON.stringify(value));

function serve(): void {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('websocket only\n');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    const seen = { url: req.url, rawHeaders: req.rawHeaders };
    print({ upgrade: seen });
    ws.send(JSON.stringify({ hello: seen }));
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => ws.terminate());
  });
  server.listen({ host: values.host, port: Number(values.port), ipv6Only: false }, () => {
    print({ listening: (server.address() as AddressInfo).port });
  });
}

const bytesOf = (data: RawData): Buffer => (Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function client(): Promise<void> {
  const host = values.host.includes(':') ? `[${values.host}]` : values.host;
  const url = `ws://${host}:${values.port}${values.path}`;
  const result: Record<string, unknown> = { ok: false, url, echoed: 0 };
  const done = (error?: string) => {
    if (error) result.error = error;
    result.ok = error === undefined;
    print(result);
    process.exit(0);
  };
  setTimeout(() => done('timeout'), Number(values.timeout)).unref();

  const ws = new WebSocket(url, { headers: { 'X-WS-MiXeD': 'ws-case' } });
  ws.on('upgrade', (res: http.IncomingMessage) => {
    result.status = res.statusCode;
    result.responseRawHeaders = res.rawHeaders;
  });
  ws.on('unexpected-response', (_req, res: http.IncomingMessage) => {
    result.status = res.statusCode;
    result.responseRawHeaders = res.rawHeaders;
    done(`unexpected response ${res.statusCode}`);
  });
  ws.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));

  const inbox: Array<{ data: Buffer; isBinary: boolean }> = [];
  let wake: (() => void) | undefined;
  ws.on('message', (data: RawData, isBinary: boolean) => {
    inbox.push({ data: bytesOf(data), isBinary });
    wake?.();
  });
  const next = async () => {
    while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
    return inbox.shift()!;
  };
  await new Promise<void>((resolve) => ws.once('open', () => resolve()));

  const hello = await next();
  result.hello = (JSON.parse(hello.data.toString()) as { hello: unknown }).hello;

  const sizes = [5, 1000, 70_000, 256 * 1024];
  for (let i = 0; i < Number(values.messages); i++) {
    const binary = i % 2 === 1;
    const payload = binary ? randomBytes(sizes[i % sizes.length]!) : Buffer.from(`message ${i} ${'é'.repeat(i)}`);
    ws.send(binary ? payload : payload.toString(), { binary });
    const echo = await next();
    if (echo.isBinary !== binary || sha(echo.data) !== sha(payload)) done(`echo ${i} differs (binary ${echo.isBinary}, ${echo.data.length} bytes)`);
    result.echoed = i + 1;
  }
  ws.close(1000, 'bye');
  ws.once('close', (code: number) => {
    result.closeCode = code;
    done();
  });
}

const modes: Record<string, () => void | Promise<void>> = { server: serve, client };
const mode = modes[positionals[0] ?? ''];
if (!mode) {
  console.error('usage: ws-app server|client ...');
  process.exit(2);
}
await mode();
