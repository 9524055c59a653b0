// An OTLP/HTTP endpoint that accepts every export and keeps nothing: what a collector is
// to the sidecar, at the least cost, so a benchmark measures the exporting side alone.
//
//   otlp-sink [--port 4318] [--host 127.0.0.1]
//
// Prints {"listening": PORT} once it accepts connections.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '4318' } } });
let exports = 0;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    exports++;
    const protobuf = (req.headers['content-type'] ?? '').startsWith('application/x-protobuf');
    res.writeHead(200, { 'content-type': protobuf ? 'application/x-protobuf' : 'application/json' }).end(protobuf ? undefined : '{}');
  });
});
server.listen({ host: values.host, port: Number(values.port) }, () => console.log(JSON.stringify({ listening: (server.address() as AddressInfo).port })));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => {
  console.log(JSON.stringify({ exports }));
  server.close();
  server.closeAllConnections();
});
