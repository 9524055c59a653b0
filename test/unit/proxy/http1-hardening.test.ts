import net from 'node:net';
import t, { type Test } from 'tap';
import { get, h1App, header, parseResponses, RawClient, rawExchange } from '../../helpers/http.ts';
import { collect, sidecar, until, type Sidecar } from './mtls-harness.ts';

// Requests a proxy must refuse rather than pass on, through one sidecar on loopback (its
// outbound listener, then its inbound one taking plaintext), written byte for byte on raw
// sockets. Each refusal must be the proxy's own
// answer (meshlet-error), close the connection (whatever follows the bad head cannot be
// framed), and leave the app untouched: nothing of the request reaches it. After each, a
// good request on a new connection still works, and nothing else reached the app.

const HEAD_LIMIT_KB = 8;
const env = {
  MESHLET_HTTP_MAX_REQUEST_HEADERS_KB: String(HEAD_LIMIT_KB),
  MESHLET_HTTP_REQUEST_HEADERS_TIMEOUT: '500ms',
  MESHLET_OUTBOUND_DETECT_TIMEOUT: '300ms',
  MESHLET_INBOUND_DETECT_TIMEOUT: '300ms',
};

/** What the app read of each request's body, and how the body ended. */
const bodies = new Map<string, { received: string; state: 'open' | 'complete' | 'aborted' }>();
const app = await h1App((req, res) => {
  const body = { received: '', state: 'open' as 'open' | 'complete' | 'aborted' };
  bodies.set(req.url ?? '', body);
  req.setEncoding('latin1');
  req.on('data', (d: string) => (body.received += d));
  req.on('error', () => {});
  req.on('close', () => {
    if (body.state === 'open') body.state = 'aborted';
  });
  req.on('end', () => {
    body.state = 'complete';
    res.end(`app saw ${req.url}`);
  });
});
t.teardown(() => app.close());

/** What the app read for one bodiless request as node:http writes it: request line, headers, blank line. */
function headBytes(r: { method: string; url: string; rawHeaders: string[] }): number {
  let n = Buffer.byteLength(`${r.method} ${r.url} HTTP/1.1\r\n\r\n`);
  for (let i = 0; i < r.rawHeaders.length; i += 2) n += Buffer.byteLength(`${r.rawHeaders[i]}: ${r.rawHeaders[i + 1]}\r\n`);
  return n;
}

/**
 * Sends `bytes` raw and checks the refusal; then a good request on a new connection, and
 * that the good request is the only thing the app read meanwhile (requests and bytes).
 */
async function refused(t: Test, port: number, bytes: string | Buffer, status: number, cause: string, parts?: Array<string | Buffer>): Promise<void> {
  const requestsBefore = app.requests.length;
  const bytesBefore = app.bytesReceived();
  const got = await rawExchange(port, parts ?? [bytes]);
  t.ok(got.closedByPeer, 'the proxy closed the connection');
  const { responses } = parseResponses(got.data, ['GET']);
  t.equal(responses.length, 1, `one response: ${JSON.stringify(got.data.toString('latin1').slice(0, 120))}`);
  const r = responses[0];
  if (r) {
    t.equal(r.status, status, `answered ${status}`);
    t.equal(header(r, 'meshlet-error'), cause, `meshlet-error: ${cause}`);
    t.equal(header(r, 'connection'), 'close', 'announces the close');
  }
  t.equal(got.data.length, r ? got.data.indexOf(r.body) + r.body.length : 0, 'nothing after the response');

  const path = `/after-${cause}-${requestsBefore}`;
  const next = await get(port, path);
  t.equal(next.status, 200, 'a good request on a new connection still succeeds');
  t.equal(next.body, `app saw ${path}`);
  const reached = app.requests.slice(requestsBefore);
  t.same(
    reached.map((r) => r.url),
    [path],
    'the refused request never reached the app (only the good one did)',
  );
  t.equal(app.bytesReceived() - bytesBefore, headBytes(reached[0]!), 'and the app read no byte of it');
}

const H = 'Host: app.example\r\n';

// Node's parser (llhttp, strict) decides these; each line says what it calls the request.
const smuggling: Array<[string, string]> = [
  // "Transfer-Encoding can't be present with Content-Length" (HPE_INVALID_TRANSFER_ENCODING)
  ['Content-Length and Transfer-Encoding both', `POST /cl-te HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding before Content-Length', `POST /te-cl HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`],
  // "Duplicate Content-Length" (HPE_UNEXPECTED_CONTENT_LENGTH)
  ['two different Content-Length', `POST /two-cl HTTP/1.1\r\n${H}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`],
  // Node refuses identical duplicates too (the same HPE_UNEXPECTED_CONTENT_LENGTH): RFC 9112
  // 6.3 would allow folding them into one, refusing is the safer reading.
  ['two identical Content-Length', `POST /dup-cl HTTP/1.1\r\n${H}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`],
  // "Invalid character in Content-Length" (HPE_INVALID_CONTENT_LENGTH)
  ['a Content-Length list', `POST /cl-list HTTP/1.1\r\n${H}Content-Length: 4, 4\r\n\r\nabcd`],
  ['a negative Content-Length', `POST /cl-neg HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`],
  // "Invalid `Transfer-Encoding` header value" (HPE_INVALID_TRANSFER_ENCODING): chunked must be last
  ['Transfer-Encoding: chunked, identity', `POST /te-list HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
  ['two Transfer-Encoding lines', `POST /te-two HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n`],
  // "Request has invalid `Transfer-Encoding`": node:http has already emitted 'request' when it says so
  ['Transfer-Encoding: xchunked', `POST /xchunked HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
  // "Unexpected whitespace after header value" (HPE_INVALID_HEADER_TOKEN)
  ['an obs-fold header', `GET /obs-fold HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\n\r\n`],
  ['an obs-folded Transfer-Encoding', `POST /obs-fold-te HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`],
  // "Invalid header token" (HPE_INVALID_HEADER_TOKEN)
  ['a space before the colon', `POST /space-colon HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc`],
  ['a tab before the colon', `GET /tab-colon HTTP/1.1\r\n${H}X-Foo\t: bar\r\n\r\n`],
  // "Invalid character in chunk size" (HPE_INVALID_CHUNK_SIZE), after 'request' was emitted
  ['a bad chunk size', `POST /bad-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`],
  ['an oversized chunk size', `POST /huge-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nabc\r\n0\r\n\r\n`],
  // "Missing expected CR after chunk size" (HPE_CR_EXPECTED): a bare LF in chunked framing
  ['a bare LF after a chunk size', `POST /lf-chunk HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`],
  // "Invalid header value char" (HPE_INVALID_HEADER_TOKEN)
  ['a NUL in a header value', `GET /nul HTTP/1.1\r\n${H}X-Foo: a\0b\r\n\r\n`],
  // "Missing expected LF after header value" (HPE_LF_EXPECTED)
  ['a bare CR in a header value', `GET /cr HTTP/1.1\r\n${H}X-Foo: a\rb\r\n\r\n`],
  // Node accepts these and keeps the first; the proxy refuses them (RFC 9112 3.2)
  ['two Host headers', `GET /two-hosts HTTP/1.1\r\n${H}Host: other.example\r\n\r\n`],
  ['two Host headers differing in case only', `GET /two-hosts-case HTTP/1.1\r\n${H}host: app.example\r\n\r\n`],
  // "Expected CRLF after version" (HPE_INVALID_VERSION): bare LF line ends
  ['bare LF line ends', `GET /bare-lf HTTP/1.1\n${H.replace('\r', '')}\n`],
];

for (const direction of ['outbound', 'inbound'] as const) {
  t.test(`the ${direction} listener`, async (t) => {
    const proxy: Sidecar = await sidecar(direction, () => app.port, { env });
    t.teardown(() => proxy.close());
    suite(t, proxy.port);
  });
}

function suite(t: Test, port: number): void {
  for (const [name, bytes] of smuggling) {
    t.test(`400 bad_request: ${name}`, (t) => refused(t, port, bytes, 400, 'bad_request'));
  }

  t.test('400 bad_request: a bad chunk size after a good chunk, once the request is under way upstream', async (t) => {
    // The head and a first chunk are good, so the request has gone to the app; the bad
    // chunk must cut it short there (the app never sees the body end), and the client gets
    // the 400 and the close.
    const url = `/late-bad-chunk-${port}`;
    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got = collect(client);
    client.write(`POST ${url} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`);
    await until(() => bodies.has(url), 'the first chunk at the app');
    client.write('zz\r\nabc\r\n0\r\n\r\n');
    client.on('end', () => client.end());
    const result = await got;
    const { responses } = parseResponses(result.data, ['POST']);
    t.same(
      responses.map((r) => [r.status, header(r, 'meshlet-error')]),
      [[400, 'bad_request']],
    );
    await until(() => bodies.get(url)?.state !== 'open', 'the request to end at the app');
    t.same(bodies.get(url), { received: 'abc', state: 'aborted' }, 'the app got the good chunk and then an aborted request, not a complete one');
  });

  t.test(`431 request_header_too_large: a head over http.maxRequestHeadersKb (${HEAD_LIMIT_KB})`, (t) =>
    refused(t, port, `GET /big HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(HEAD_LIMIT_KB * 1024 + 100)}\r\n\r\n`, 431, 'request_header_too_large'),
  );

  t.test('431 request_header_too_large: a request line alone over the limit', (t) =>
    refused(t, port, `GET /${'a'.repeat(HEAD_LIMIT_KB * 1024 + 100)} HTTP/1.1\r\n${H}\r\n`, 431, 'request_header_too_large'),
  );

  t.test('408 request_header_timeout: a head that stops arriving', (t) =>
    refused(t, port, '', 408, 'request_header_timeout', [`GET /stalled HTTP/1.1\r\n${H}X-Partial: yes\r\n`]),
  );

  t.test('408 request_header_timeout: a request line that stops arriving', (t) => refused(t, port, '', 408, 'request_header_timeout', ['GET /stalled-line']));

  t.test('408 request_header_timeout: the second head on a kept-alive connection stops arriving', async (t) => {
    const requestsBefore = app.requests.length;
    const got = await rawExchange(port, [`GET /first HTTP/1.1\r\n${H}\r\nGET /second HTTP/1.1\r\n${H}`]);
    t.ok(got.closedByPeer, 'the proxy closed the connection');
    const { responses } = parseResponses(got.data, ['GET', 'GET']);
    t.same(
      responses.map((r) => [r.status, header(r, 'meshlet-error')]),
      [
        [200, undefined],
        [408, 'request_header_timeout'],
      ],
    );
    t.equal(responses[0]?.body.toString(), 'app saw /first');
    t.same(
      app.requests.slice(requestsBefore).map((r) => r.url),
      ['/first'],
    );
  });

  t.test('an idle kept-alive connection is not timed out like a slow head: only a head under way is', async (t) => {
    const client = new RawClient(port);
    t.teardown(() => client.close());
    client.write(`GET /idle-1 HTTP/1.1\r\n${H}\r\n`);
    t.equal((await client.read(['GET']))[0]?.status, 200);
    // Idle for more than twice the 500 ms head timeout, with no request begun.
    await new Promise((r) => setTimeout(r, 1200));
    t.notOk(client.closed, 'still open');
    client.write(`GET /idle-2 HTTP/1.1\r\n${H}\r\n`);
    const [second] = await client.read(['GET']);
    t.equal(second?.status, 200, 'the next request on it is served');
    t.equal(second?.body.toString(), 'app saw /idle-2');
  });
}
