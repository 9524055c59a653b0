import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { BAD, GOOD } from '../../fixtures/h1-corpus/corpus.ts';
import { failureOf, record } from '../../fixtures/h1-corpus/record.ts';

// meshlet's HTTP/1.1 parser against Node's own (llhttp, strict: insecureHTTPParser off),
// over the bad-input corpus and the valid examples. Requests go byte for byte to a
// node:http server on loopback, responses come byte for byte from a raw server to a
// node:http client. The rule: meshlet never accepts what llhttp refuses. Where meshlet
// refuses what llhttp accepts, the input is listed below with the reason.

/**
 * Inputs llhttp accepts and meshlet refuses, on purpose. (docs/http.md carries the same
 * list.) Every entry must still differ: one that llhttp starts refusing is reported, so
 * the list does not outlive its reasons.
 */
const MESHLET_STRICTER: Record<string, string> = {
  'Transfer-Encoding on HTTP/1.0':
    'RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing (HTTP/1.0 has no chunked); llhttp decodes it as chunked.',
  'too many headers': "Envoy's limit (100 fields): llhttp has no count limit (node:http drops fields past maxHeadersCount, 2000, silently).",
  'HTTP/0.9 request line (no version)': 'RFC 9112 has no HTTP/0.9; llhttp reads a request line without a version as an HTTP/0.9 request.',
  'two spaces after the method':
    'RFC 9112 3: one SP between the parts of a request line; llhttp skips extra spaces (a parser elsewhere splitting on single spaces would see another target).',
  'oversize chunk extension': 'chunk extensions are bounded (4 KiB per chunk) so that a body of extensions costs no unbounded work; llhttp has no bound.',
  'three empty lines before the request line':
    'RFC 9112 2.2 asks servers to skip at least one empty line before a request line; meshlet skips two, llhttp any number.',
  'asterisk-form on GET': 'RFC 9112 3.2.4: the asterisk-form is only for OPTIONS.',
  'CONNECT without a port': 'RFC 9112 3.2.3: the authority-form of CONNECT is host:port; llhttp takes any authority.',
  'TE.TE: empty list element before chunked':
    'RFC 9110 5.6.1 would have empty list elements skipped; in Transfer-Encoding meshlet refuses them (no sender writes them, and llhttp itself refuses one after chunked).',
  'chunk extension with an empty value': 'RFC 9112 7.1.1: chunk-ext-val is a token or a quoted-string, never empty; llhttp accepts `;a=`.',
  'Content-Length with 17 digits': 'meshlet reads at most 16 digits (2^53 - 1 has 16); leading zeros past that are refused.',
  'status over 599': 'RFC 9110 15: status codes are 100-599; llhttp accepts 000-999.',
  'NUL in the reason phrase': 'RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); llhttp accepts NUL there.',
  'HTTP/2.0 status line': 'only HTTP/1.0 and HTTP/1.1 are HTTP/1.x; llhttp accepts a 2.0 version in a status line.',
  'response TE: chunked followed by a tab':
    'llhttp takes `chunked<TAB>` for a coding other than chunked and reads the body until close, RFC 9110 OWS makes it chunked: with two readings about, meshlet refuses it (requests too, where llhttp refuses it as well).',
  'response Transfer-Encoding on HTTP/1.0': 'RFC 9112 6.1: faulty framing in an HTTP/1.0 message, as for requests.',
};

/** Inputs meshlet accepts and llhttp refuses. Must stay empty: meshlet is at least as strict as llhttp everywhere. */
const MESHLET_LOOSER: Record<string, string> = {};

interface Seen {
  error?: string;
  messages: { method: string; url: string; status: number; rawHeaders: string[]; body: string; trailers: string[]; complete: boolean; upgrade: boolean }[];
}

const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

// ---- requests: a node:http server ----
const byPort = new Map<number, Seen>();
const seenOf = (socket: net.Socket): Seen => {
  const port = socket.remotePort ?? 0;
  let seen = byPort.get(port);
  if (!seen) byPort.set(port, (seen = { messages: [] }));
  return seen;
};
const server = http.createServer({ insecureHTTPParser: false, requireHostHeader: false, maxHeaderSize: 16 * 1024 });
server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
  const m = { method: req.method ?? '', url: req.url ?? '', status: 0, rawHeaders: req.rawHeaders, body: '', trailers: [] as string[], complete: false, upgrade: false };
  seenOf(req.socket).messages.push(m);
  req.setEncoding('latin1');
  req.on('data', (d: string) => (m.body += d));
  req.on('end', () => {
    m.complete = true;
    m.trailers = req.rawTrailers;
    res.end();
  });
  req.on('error', () => {});
});
const tunnel = (req: http.IncomingMessage, socket: net.Socket) => {
  seenOf(socket).messages.push({ method: req.method ?? '', url: req.url ?? '', status: 0, rawHeaders: req.rawHeaders, body: '', trailers: [], complete: false, upgrade: true });
  socket.destroy();
};
server.on('upgrade', tunnel);
server.on('connect', tunnel);
server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
  seenOf(socket).error = err.code ?? err.message;
  socket.destroy();
});
const port = await listen(server);
t.teardown(() => server.close());

// How long to wait for node:http to report on an input: only the inputs it waits on for
// more bytes (two in the corpus) use it all. 400 ms was too short under a loaded machine
// (a -j2 run of the suite once saw valid inputs not yet answered, reported as refused).
const settle = (done: () => boolean, ms = 2000) =>
  new Promise<void>((resolve) => {
    const start = Date.now();
    const tick = () => (done() || Date.now() - start > ms ? resolve() : setTimeout(tick, 5));
    tick();
  });

async function llhttpRequest(input: string, expected: number): Promise<Seen> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const local = socket.localPort ?? 0;
  // The kernel hands a local port out again once its last connection is gone: what the
  // server recorded for an earlier connection from it is not this one's (a CI run read an
  // earlier input's HPE_INVALID_URL as a plain GET's).
  byPort.delete(local);
  let closed = false;
  socket.once('close', () => (closed = true));
  socket.write(Buffer.from(input, 'latin1'));
  const seen = () => byPort.get(local);
  await settle(() => {
    const s = seen();
    return closed || s?.error !== undefined || (s !== undefined && s.messages.filter((m) => m.complete || m.upgrade).length >= expected && expected > 0);
  });
  await new Promise((resolve) => setTimeout(resolve, 10)); // a late error after the last message
  socket.destroy();
  const result = seen() ?? { messages: [] };
  byPort.delete(local);
  return result;
}

// ---- responses: a raw server and a node:http client ----
let nextResponse = '';
const raw = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.once('data', () => socket.end(Buffer.from(nextResponse, 'latin1')));
});
const rawPort = await listen(raw);
t.teardown(() => raw.close());

function llhttpResponse(input: string, method: string): Promise<Seen> {
  nextResponse = input;
  const seen: Seen = { messages: [] };
  return new Promise((resolve) => {
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      resolve(seen);
    };
    const req = http.request({ host: '127.0.0.1', port: rawPort, method, path: '/', agent: false, insecureHTTPParser: false });
    req.on('information', (info) => seen.messages.push({ method: '', url: '', status: info.statusCode, rawHeaders: info.rawHeaders, body: '', trailers: [], complete: true, upgrade: false }));
    req.on('response', (res) => {
      const m = { method: '', url: '', status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body: '', trailers: [] as string[], complete: false, upgrade: false };
      seen.messages.push(m);
      res.setEncoding('latin1');
      res.on('data', (d: string) => (m.body += d));
      res.on('end', () => {
        m.complete = true;
        m.trailers = res.rawTrailers;
        setTimeout(done, 10);
      });
      res.on('error', (err: NodeJS.ErrnoException) => {
        seen.error = err.code ?? err.message;
        done();
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      seen.error = err.code ?? err.message;
      done();
    });
    req.on('close', () => setTimeout(done, 20));
    req.end();
  });
}

// ---- meshlet ----
function meshlet(kind: 'request' | 'response', input: string, expect?: string): Seen {
  const events = record(kind, input, { expect: expect ? [expect] : [], finish: kind === 'response' });
  const seen: Seen = { messages: [] };
  const failure = failureOf(events);
  if (failure) seen.error = failure;
  for (const e of events) {
    if (e.type === 'head') {
      const h = e.head;
      seen.messages.push({ method: h.method, url: h.target, status: h.status, rawHeaders: h.headers, body: '', trailers: [], complete: h.status >= 100 && h.status < 200 && !h.upgrade, upgrade: h.upgrade });
    } else if (e.type === 'body') seen.messages.at(-1)!.body += e.data;
    else if (e.type === 'end') {
      const m = seen.messages.at(-1)!;
      m.complete = true;
      m.trailers = e.trailers;
    }
  }
  return seen;
}

const accepted = (s: Seen) => s.error === undefined && s.messages.length > 0 && s.messages.every((m) => m.complete || m.upgrade);

const stricterSeen = new Set<string>();
for (const input of [...BAD.map((b) => ({ ...b, bad: true })), ...GOOD.map((g) => ({ ...g, bad: false }))]) {
  t.test(`${input.kind}: ${input.name}`, async (t) => {
    const ours = meshlet(input.kind, input.input, input.expect);
    const theirs = input.kind === 'request' ? await llhttpRequest(input.input, Math.max(1, ours.messages.length)) : await llhttpResponse(input.input, input.expect ?? 'GET');
    t.equal(ours.error !== undefined, input.bad, `meshlet ${input.bad ? 'refuses' : 'accepts'} it (${ours.error ?? 'accepted'})`);
    const llhttpRefuses = !accepted(theirs);
    if (accepted(ours)) {
      if (MESHLET_LOOSER[input.name]) t.ok(llhttpRefuses, `still looser than llhttp: ${MESHLET_LOOSER[input.name]}`);
      else t.notOk(llhttpRefuses, `llhttp must accept what meshlet accepts (llhttp: ${theirs.error ?? 'incomplete'})`);
      if (!llhttpRefuses) {
        // Both accept: they must read the same messages.
        const view = (s: Seen) => s.messages.map((m) => ({ method: m.method, url: m.url, status: m.status, rawHeaders: m.rawHeaders, body: m.body, trailers: m.trailers }));
        t.same(view(ours), view(theirs), 'same messages as llhttp');
      }
    } else if (!llhttpRefuses) {
      stricterSeen.add(input.name);
      t.ok(MESHLET_STRICTER[input.name], `meshlet refuses (${ours.error}) what llhttp accepts: listed in MESHLET_STRICTER`);
    }
  });
}

t.test('every MESHLET_STRICTER entry is still a difference', async (t) => {
  for (const name of Object.keys(MESHLET_STRICTER)) t.ok(stricterSeen.has(name), name);
});
