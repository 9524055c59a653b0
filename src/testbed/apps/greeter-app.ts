// A server-first protocol, the way MySQL, SMTP or FTP behave: the server speaks first and
// the client only reads until it has the greeting, then answers. A proxy that waits for
// the client's first bytes to detect the protocol stalls it (until its detect timeout).
//
//   server --port P[,P...] [--host ::]
//       on connect writes "GREETING <nonce> from <port>\n"; expects "HELLO <nonce>\n" and
//       answers "WELCOME <nonce>\n", then closes. Prints {"listening": P} per port and
//       {"greeted": port} per connection.
//   client --host H --port P [--timeout MS]
//       reads the greeting, answers it, reads the welcome; prints {ok, greeting, welcome, error?}.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    timeout: { type: 'string', default: '10000' },
  },
});

const print = (value: unknown) => console.log(JSON.stringify(value));

/** Calls `onLine` for each complete line that arrives on `socket`. */
function lines(socket: net.Socket, onLine: (line: string) => void): void {
  let buffered = '';
  socket.on('data', (d: Buffer) => {
    buffered += d.toString('latin1');
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
}

if (positionals[0] === 'server') {
  for (const port of (values.port ?? '').split(',').map(Number)) {
    const server = net.createServer((socket) => {
      const nonce = randomBytes(6).toString('hex');
      print({ greeted: port });
      socket.write(`GREETING ${nonce} from ${port}\n`);
      lines(socket, (line) => socket.end(line === `HELLO ${nonce}` ? `WELCOME ${nonce}\n` : `ERROR expected HELLO ${nonce}, got ${line.slice(0, 60)}\n`));
      socket.on('error', () => socket.destroy());
    });
    server.listen({ host: values.host, port, ipv6Only: false }, () => print({ listening: port }));
  }
} else if (positionals[0] === 'client') {
  const result: { ok: boolean; greeting?: string; welcome?: string; error?: string } = { ok: false };
  const finish = (error?: string) => {
    result.ok = error === undefined;
    if (error) result.error = error;
    print(result);
    process.exit(0);
  };
  setTimeout(() => finish('timeout'), Number(values.timeout)).unref();
  // The client never writes before the greeting has arrived.
  const socket = net.connect({ host: values.host, port: Number(values.port) });
  socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
  socket.on('close', () => finish(result.welcome === undefined ? 'closed before the welcome' : undefined));
  lines(socket, (line) => {
    if (result.greeting === undefined) {
      result.greeting = line;
      const nonce = /^GREETING ([0-9a-f]+) /.exec(line)?.[1];
      if (!nonce) return finish(`not a greeting: ${line.slice(0, 60)}`);
      socket.write(`HELLO ${nonce}\n`);
    } else {
      result.welcome = line;
      if (!line.startsWith('WELCOME ')) finish(`refused: ${line}`);
    }
  });
} else {
  console.error('usage: greeter-app server|client ...');
  process.exit(2);
}
