// An app that calls another service while it answers, and passes the trace headers of
// the request it is answering on to that call, as an instrumented app (or any app that
// copies them) does, so a trace continues through it. For the tracing tests.
//
//   trace-relay-app --to URL [--port 8080] [--host ::]
//
// Each request is answered with {"incoming": rawHeaders, "downstream": {"status", "body"}}
// after one GET of URL; prints {"listening": PORT} once it accepts connections.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { to: { type: 'string' }, host: { type: 'string', default: '::' }, port: { type: 'string', default: '8080' } },
});
if (!values.to) throw new Error('--to URL is required');
const to = new URL(values.to);

/** The headers of the W3C Trace Context, W3C Baggage and B3 formats. */
const PROPAGATED = new Set(['traceparent', 'tracestate', 'baggage', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

const server = http.createServer((req, res) => {
  req.resume();
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (PROPAGATED.has(name) && typeof value === 'string') headers[name] = value;
  const call = http.get(to, { headers, agent: false }, (down) => {
    let body = '';
    down.setEncoding('utf8').on('data', (d: string) => (body += d));
    down.on('end', () => {
      const answer = JSON.stringify({ incoming: req.rawHeaders, downstream: { status: down.statusCode, body } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) }).end(answer);
    });
  });
  call.on('error', (err) => res.writeHead(502, { 'content-type': 'text/plain' }).end(String(err)));
});

server.listen({ host: values.host, port: Number(values.port), ipv6Only: false }, () => {
  console.log(JSON.stringify({ listening: (server.address() as AddressInfo).port }));
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => {
  server.close();
  server.closeAllConnections();
});
