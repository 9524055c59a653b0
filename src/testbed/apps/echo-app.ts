// A line-echo application for the mTLS tests: the server sends back every byte it
// receives; each mode prints JSON lines on stdout so tests can read what happened.
//
//   server --port P[,P...] [--host H] [--tls-cert F --tls-key F [--alpn PROTO]]
//       echoes; data ending in a line "bye" ends the connection after its echo; a client's
//       half-close is mirrored. Prints {"accepted": port, "peer": addr} per connection
//       (per completed handshake with TLS), so a test can tell that nothing reached it.
//   client --host H --port P --send TEXT [--tls --ca F [--servername N]] [--timeout MS]
//       sends TEXT, half-closes, reads until the server closes; prints
//       {ok, echoed, error?, peerCert?: {subject, fingerprint256, serialNumber}}.
//   stream --host H --port P --duration MS [--interval MS]
//       one long-lived connection: a numbered line every interval, each echo checked
//       before the next is sent; prints {"progress": n} as it goes and at the end
//       {ok, roundTrips, error?}.
//   loop --host H --port P --duration MS [--interval MS]
//       a new connection per round (sequential), each must echo its own line; prints
//       {"progress": n} as it goes and at the end {ok, connections, failures, errors}.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    send: { type: 'string', default: 'hello' },
    timeout: { type: 'string', default: '10000' },
    duration: { type: 'string', default: '20000' },
    interval: { type: 'string', default: '50' },
    tls: { type: 'boolean', default: false },
    ca: { type: 'string' },
    servername: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    alpn: { type: 'string' },
  },
});

const print = (value: unknown) => console.log(JSON.stringify(value));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function serve(): void {
  const ports = (values.port ?? '').split(',').map(Number);
  const onSocket = (port: number) => (socket: net.Socket) => {
    print({ accepted: port, peer: socket.remoteAddress });
    let text = '\n'; // what arrived, trimmed to the last few bytes: enough to spot a "bye" line across chunks
    socket.on('data', (data: Buffer) => {
      socket.write(data);
      text = (text + data.toString('latin1')).slice(-8);
      if (text.endsWith('\nbye\n')) socket.end();
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
  };
  for (const port of ports) {
    const server = values['tls-cert']
      ? tls.createServer({
          cert: readFileSync(values['tls-cert']),
          key: readFileSync(values['tls-key']!),
          allowHalfOpen: true,
          ...(values.alpn ? { ALPNProtocols: [values.alpn] } : {}),
        })
      : net.createServer({ allowHalfOpen: true });
    server.on(values['tls-cert'] ? 'secureConnection' : 'connection', onSocket(port));
    server.listen({ host: values.host, port, ipv6Only: false }, () => print({ listening: port }));
  }
}

function connect(): net.Socket {
  const port = Number(values.port);
  if (!values.tls) return net.connect({ host: values.host, port, allowHalfOpen: true });
  return tls.connect({
    host: values.host,
    port,
    ca: values.ca ? readFileSync(values.ca) : undefined,
    servername: values.servername,
    allowHalfOpen: true,
  } as tls.ConnectionOptions);
}

/** One connection: send `text`, half-close, collect the echo until the server closes. */
function exchange(text: string, timeoutMs: number): Promise<{ ok: boolean; echoed: string; error?: string; peerCert?: Record<string, string> }> {
  return new Promise((resolve) => {
    const socket = connect();
    let echoed = '';
    let peerCert: Record<string, string> | undefined;
    const finish = (error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: error === undefined && echoed === text, echoed, ...(error ? { error } : {}), ...(peerCert ? { peerCert } : {}) });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.once(values.tls ? 'secureConnect' : 'connect', () => {
      if (socket instanceof tls.TLSSocket) {
        const raw = socket.getPeerCertificate().raw;
        const cert = raw ? new X509Certificate(raw) : undefined;
        if (cert) peerCert = { subject: cert.subject, fingerprint256: cert.fingerprint256, serialNumber: cert.serialNumber };
      }
      socket.end(text);
    });
    socket.on('data', (d: Buffer) => (echoed += d.toString('latin1')));
    socket.on('end', () => finish(echoed === text ? undefined : 'closed before the whole echo'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
  });
}

async function client(): Promise<void> {
  const result = await exchange(values.send, Number(values.timeout));
  print(result);
  process.exitCode = result.ok ? 0 : 1;
}

async function stream(): Promise<void> {
  const socket = connect();
  const until = Date.now() + Number(values.duration);
  let roundTrips = 0;
  let buffered = '';
  let waiting: ((line: string) => void) | undefined;
  let failure: string | undefined;
  const failed = new Promise<void>((resolve) => {
    socket.on('error', (err: NodeJS.ErrnoException) => {
      failure ??= err.code ?? err.message;
      resolve();
    });
    socket.on('close', () => {
      failure ??= 'closed by the other side';
      resolve();
    });
  });
  socket.on('data', (d: Buffer) => {
    buffered += d.toString('latin1');
    const nl = buffered.indexOf('\n');
    if (nl >= 0 && waiting) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting(line);
    }
  });
  await Promise.race([new Promise((r) => socket.once(values.tls ? 'secureConnect' : 'connect', r)), failed]);
  while (failure === undefined && Date.now() < until) {
    const line = `round ${roundTrips + 1} ${'x'.repeat(64)}`;
    const echo = new Promise<string>((resolve) => (waiting = resolve));
    socket.write(`${line}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), Number(values.timeout))));
    const got = await Promise.race([echo, failed.then(() => undefined), timedOut]);
    clearTimeout(timer);
    if (got === undefined) break;
    if (got !== line) {
      failure = got === 'timeout' ? 'echo timed out' : `echo mismatch: ${got.slice(0, 40)}`;
      break;
    }
    roundTrips++;
    if (roundTrips % 10 === 0) print({ progress: roundTrips });
    await sleep(Number(values.interval));
  }
  const ok = failure === undefined;
  socket.removeAllListeners('close');
  socket.destroy();
  print({ ok, roundTrips, ...(ok ? {} : { error: failure }) });
  process.exitCode = ok ? 0 : 1;
}

async function loop(): Promise<void> {
  const until = Date.now() + Number(values.duration);
  let connections = 0;
  let failures = 0;
  const errors: string[] = [];
  while (Date.now() < until) {
    const r = await exchange(`connection ${connections + 1}\n`, Number(values.timeout));
    connections++;
    if (!r.ok) {
      failures++;
      if (errors.length < 10) errors.push(r.error ?? 'echo mismatch');
    }
    if (connections % 10 === 0) print({ progress: connections });
    await sleep(Number(values.interval));
  }
  print({ ok: failures === 0, connections, failures, errors });
  process.exitCode = failures === 0 ? 0 : 1;
}

const modes: Record<string, () => void | Promise<void>> = { server: serve, client, stream, loop };
const mode = modes[positionals[0] ?? ''];
if (!mode) {
  console.error('usage: echo-app server|client|stream|loop ...');
  process.exit(2);
}
await mode();
