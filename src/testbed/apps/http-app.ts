// A tiny HTTP service for the pods of the testbed and the demo. It answers every request
// with one JSON object saying which pod answered and who it saw connecting, so a caller
// can tell whether a sidecar stood in between (the source is then the pod's own address).
//
//   http-app --pod NAME [--port 8080] [--host ::]
//
// Prints {"listening":PORT} on stdout once it accepts connections.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    pod: { type: 'string', default: 'unknown' },
    host: { type: 'string', default: '::' },
    port: { type: 'string', default: '8080' },
  },
});

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket) → `10.0.0.1`. */
function unmap(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

const server = http.createServer((req, res) => {
  // Drain whatever body was sent before answering, so the connection can be reused.
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({
      pod: values.pod,
      method: req.method,
      url: req.url,
      remoteAddress: unmap(req.socket.remoteAddress),
      remotePort: req.socket.remotePort,
      localAddress: unmap(req.socket.localAddress),
      localPort: req.socket.localPort,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

server.listen({ host: values.host, port: Number(values.port), ipv6Only: false }, () => {
  console.log(JSON.stringify({ listening: (server.address() as AddressInfo).port }));
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
  });
}
