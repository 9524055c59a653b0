import fc from 'fast-check';
import t from 'tap';
import type { ReceivedHead } from '../../../src/pipeline/exchange.ts';
import { Http1Parser, type Head } from '../../../src/proxy/http/h1/parser.ts';
import { chunkHeader, CRLF, Http1SerializeError, requestHead, responseHead, trailerBlock } from '../../../src/proxy/http/h1/serialize.ts';
import { LIMITS, record, type Event } from '../../fixtures/h1-corpus/record.ts';
import { agrees } from '../../helpers/property.ts';

// Generated inputs for the HTTP/1.1 codec: valid requests and responses survive
// serialize -> parse, whole, split anywhere and pipelined; arbitrary bytes never throw,
// never yield more body than was fed, and give the same events however they are split.

const RUNS = { numRuns: 300 };
const latin1 = (s: string) => Buffer.from(s, 'latin1');
const chars = (codes: number[]) => fc.constantFrom(...codes.map((c) => String.fromCharCode(c)));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const TCHARS = [..."!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"].map((c) => c.charCodeAt(0));
const token = fc.string({ unit: chars(TCHARS), minLength: 1, maxLength: 12 });
/** Field value characters: HTAB, SP, VCHAR, obs-text; no OWS at either end (the parser trims it). */
const fieldValue = fc
  .string({ unit: chars([9, ...range(0x20, 0x7e), ...range(0x80, 0xff)]), maxLength: 40 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
/** Names that change framing or the head's flags are left to the generator of bodies. */
const SPECIAL = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade', 'expect', 'trailer']);
const fields = fc
  .array(fc.tuple(token.filter((n) => !SPECIAL.has(n.toLowerCase())), fieldValue), { maxLength: 8 })
  .map((pairs) => pairs.flat());
const target = fc.string({ unit: chars(range(0x21, 0x7e)), maxLength: 30 }).map((s) => '/' + s);
const bytes = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max }).map((a) => Buffer.from(a).toString('latin1'));

/** chunk-ext: ;name[=token|quoted-string], quoted strings with escapes. */
const quoted = fc
  .array(fc.oneof(chars([9, 0x20, 0x21, ...range(0x23, 0x5b), ...range(0x5d, 0x7e), ...range(0x80, 0xff)]), chars([0x22, 0x5c, 0x41]).map((c) => '\\' + c)), { maxLength: 8 })
  .map((parts) => `"${parts.join('')}"`);
const extension = fc
  .array(fc.tuple(token, fc.option(fc.oneof(token, quoted), { nil: undefined })), { maxLength: 3 })
  .map((list) => list.map(([n, v]) => `;${n}${v === undefined ? '' : '=' + v}`).join(''));

type Body = { kind: 'none' } | { kind: 'length'; data: string } | { kind: 'chunked'; chunks: Array<{ data: string; ext: string }>; trailers: string[] };
const body: fc.Arbitrary<Body> = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.oneof(fc.constant(''), bytes(200)).map((data) => ({ kind: 'length' as const, data })),
  fc.record({
    kind: fc.constant('chunked' as const),
    chunks: fc.array(fc.record({ data: bytes(60), ext: extension }), { maxLength: 5 }),
    trailers: fields.map((f) => f.slice(0, 6)),
  }),
);

function framed(headers: string[], b: Body): { headers: string[]; bytes: string; data: string; trailers: string[] } {
  switch (b.kind) {
    case 'none':
      return { headers, bytes: '', data: '', trailers: [] };
    case 'length':
      return { headers: [...headers, 'Content-Length', String(b.data.length)], bytes: b.data, data: b.data, trailers: [] };
    case 'chunked': {
      let out = '';
      for (const c of b.chunks) out += chunkHeader(c.data.length).slice(0, -2) + c.ext + CRLF + c.data + CRLF;
      return { headers: [...headers, 'Transfer-Encoding', 'chunked'], bytes: out + trailerBlock(b.trailers), data: b.chunks.map((c) => c.data).join(''), trailers: b.trailers };
    }
  }
}

interface Message {
  bytes: string;
  expected: { method: string; target: string; status: number; reason: string; headers: string[]; data: string; trailers: string[] };
}

const request: fc.Arbitrary<Message> = fc.record({ method: token, target, headers: fields, body }).map(({ method, target, headers, body }) => {
  const f = framed(headers, body);
  return { bytes: requestHead(method, target, f.headers) + f.bytes, expected: { method, target, status: 0, reason: '', headers: f.headers, data: f.data, trailers: f.trailers } };
});

const reason = fc.string({ unit: chars([9, ...range(0x20, 0x7e), ...range(0x80, 0xff)]), minLength: 1, maxLength: 20 });
const response: fc.Arbitrary<Message> = fc
  .record({ status: fc.integer({ min: 200, max: 599 }).filter((s) => s !== 204 && s !== 304), reason, headers: fields, body: body.filter((b) => b.kind !== 'none') })
  .map(({ status, reason, headers, body }) => {
    const f = framed(headers, body);
    return { bytes: responseHead(status, reason, f.headers) + f.bytes, expected: { method: '', target: '', status, reason, headers: f.headers, data: f.data, trailers: f.trailers } };
  });

/** The messages the events describe, in the shape of Message['expected']. */
function messages(events: Event[]) {
  const out: Message['expected'][] = [];
  for (const e of events) {
    if (e.type === 'head') out.push({ method: e.head.method, target: e.head.target, status: e.head.status, reason: e.head.reason, headers: e.head.headers, data: '', trailers: [] });
    else if (e.type === 'body') out.at(-1)!.data += e.data;
    else if (e.type === 'end') out.at(-1)!.trailers = e.trailers;
  }
  return out;
}

const ends = (events: Event[]) => events.filter((e) => e.type === 'end').length;

/** Cuts a string at the given positions (taken modulo its length). */
function cut(s: string, positions: number[]): Buffer[] {
  const at = [...new Set(positions.map((p) => p % (s.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of at) {
    if (p > prev) out.push(latin1(s.slice(prev, p)));
    prev = Math.max(prev, p);
  }
  if (prev < s.length) out.push(latin1(s.slice(prev)));
  return out;
}

for (const [kind, arb] of [['request', request], ['response', response]] as const) {
  t.test(`valid ${kind}s survive serialize -> parse, whole and split anywhere`, async (t) => {
    fc.assert(
      fc.property(arb, fc.array(fc.nat(), { maxLength: 6 }), (m, positions) => {
        const expect = kind === 'response' ? ['GET'] : [];
        const whole = record(kind, m.bytes, { expect });
        t.same(messages(whole), [m.expected], 'whole');
        if (ends(whole) !== 1) return false;
        const split = record(kind, cut(m.bytes, positions), { expect });
        t.same(messages(split), [m.expected], 'split');
        const shared = record(kind, cut(m.bytes, positions), { expect, shared: true });
        t.same(messages(shared), [m.expected], 'split, each piece read into a shared buffer with other bytes after it');
        return ends(split) === 1 && ends(shared) === 1;
      }),
      RUNS,
    );
  });

  t.test(`pipelined ${kind}s in one buffer, and split anywhere`, async (t) => {
    fc.assert(
      fc.property(fc.array(arb, { minLength: 2, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 8 }), (list, positions) => {
        const all = list.map((m) => m.bytes).join('');
        const expect = kind === 'response' ? list.map(() => 'GET') : [];
        const want = list.map((m) => m.expected);
        const whole = record(kind, all, { expect });
        t.same(messages(whole), want, 'one buffer');
        const split = record(kind, cut(all, positions), { expect });
        t.same(messages(split), want, 'split');
        const shared = record(kind, cut(all, positions), { expect, shared: true });
        t.same(messages(shared), want, 'split, into a shared buffer');
        return ends(whole) === list.length && ends(split) === list.length && ends(shared) === list.length;
      }),
      { numRuns: 150 },
    );
  });
}

/** Feeds chunks to a fresh parser; throws if execute() or finish() does, or if an invariant breaks. */
function feed(kind: 'request' | 'response', chunks: Buffer[], limits = LIMITS): { bodyBytes: number; events: string[] } {
  let bodyBytes = 0;
  const events: string[] = [];
  let errored = false;
  const parser = new Http1Parser(
    kind,
    {
      onHead: () => void events.push('head'),
      onBody: (c) => {
        if (c.length === 0) throw new Error('empty body chunk');
        bodyBytes += c.length;
        events.push('body');
      },
      onMessageEnd: () => void events.push('end'),
      onError: () => {
        if (errored) throw new Error('a second onError');
        errored = true;
        events.push('error');
      },
    },
    limits,
  );
  parser.expect('GET');
  for (const c of chunks) parser.execute(c);
  parser.finish();
  if (errored && events.at(-1) !== 'error') throw new Error('events after onError');
  return { bodyBytes, events };
}

const interesting = chars([0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x3b, 0x3d, 0x22, 0x2c, 0x30, 0x35, 0x61, 0x46, 0x00, 0x7f, 0xff]);
const framingEdits = fc.oneof(interesting, fc.constantFrom('\r\n', 'Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n', '\r\n\r\n'));
/** A valid message with a few bytes replaced, inserted or removed (`texts` are what goes in; at least `least` edits). */
const mutated = (arb: fc.Arbitrary<Message>, texts: fc.Arbitrary<string> = framingEdits, least = 1) =>
  fc
    .tuple(arb, fc.array(fc.tuple(fc.nat(), fc.constantFrom('insert', 'replace', 'delete'), texts), { minLength: least, maxLength: 4 }))
    .map(([m, edits]) => {
      let s = m.bytes;
      for (const [pos, op, text] of edits) {
        const p = pos % (s.length + 1);
        s = op === 'insert' ? s.slice(0, p) + text + s.slice(p) : op === 'replace' ? s.slice(0, p) + text + s.slice(p + 1) : s.slice(0, p) + s.slice(p + 1);
      }
      return s;
    });

for (const kind of ['request', 'response'] as const) {
  const arbitrary = fc.oneof(bytes(300), mutated(kind === 'request' ? request : response));
  t.test(`${kind}: arbitrary bytes never throw, never give more body than input`, async (t) => {
    fc.assert(
      fc.property(arbitrary, fc.array(fc.nat(), { maxLength: 6 }), (s, positions) => {
        const input = latin1(s);
        const tight = { maxHeadBytes: 64, maxHeaders: 3 };
        for (const limits of [LIMITS, tight]) {
          const whole = feed(kind, [input], limits);
          if (whole.bodyBytes > input.length) return false;
          const split = feed(kind, cut(s, positions), limits);
          if (split.bodyBytes !== whole.bodyBytes) return false;
        }
        return true;
      }),
      { numRuns: 1000 },
    );
    t.pass('no exception, body within the input');
  });

  t.test(`${kind}: arbitrary bytes give the same events however they are split`, async (t) => {
    fc.assert(
      fc.property(arbitrary, fc.array(fc.nat(), { maxLength: 6 }), (s, positions) => {
        const whole = record(kind, s, { expect: ['GET'], finish: true });
        const split = record(kind, cut(s, positions), { expect: ['GET'], finish: true });
        t.same(split, whole);
        return JSON.stringify(split) === JSON.stringify(whole);
      }),
      { numRuns: 1000 },
    );
  });

  // A whole head's field lines are checked at once (parser.ts fieldLines); fed a byte at a
  // time, every line goes through the per-line checks alone. Both must report the same,
  // refusals included, also at the edges of the size and count limits.
  t.test(`${kind}: field lines read at once give what reading them one byte at a time gives`, async (t) => {
    const nasty = fc.oneof(interesting, chars([0x01, 0x08, 0x0b, 0x1f, 0x80]), fc.constantFrom('\r\n ', '\r\n\t', 'x\r', ': ', 'Name:\r\n', ' \t'));
    const edited = mutated(kind === 'request' ? request : response, nasty, 0);
    fc.assert(
      fc.property(edited, fc.integer({ min: -40, max: 40 }), fc.integer({ min: 1, max: 10 }), (s, slack, maxHeaders) => {
        const head = s.indexOf('\r\n\r\n');
        for (const limits of [LIMITS, { maxHeadBytes: Math.max(1, (head === -1 ? s.length : head + 4) + slack), maxHeaders }]) {
          const whole = record(kind, s, { expect: ['GET'], finish: true, limits });
          const bytewise = record(kind, [...latin1(s)].map((b) => Buffer.of(b)), { expect: ['GET'], finish: true, limits });
          if (!agrees(t, whole, bytewise, JSON.stringify(s))) return false;
        }
        return true;
      }),
      { numRuns: 1000 },
    );
    t.pass('the same events, whole and byte by byte');
  });
}

// A writer skips the checks of entries it finds in the list its parser read
// (ReceivedHead), and writes them as the lines they were read from. Whatever a layer then
// does to the list (adds, replaces, removes, reorders, with values a parser would never
// have let through), what is written must read back as the list itself, and what is
// refused must be refused, as when every entry is checked and written anew. The heads are
// read whole (one text) or cut in pieces (no text: checks skipped, lines written anew).
t.test('a list changed after its parser read it: the head written, or refused, as if every entry were checked and written anew', async (t) => {
  const bad = fc.constantFrom('a\r\nInjected: 1', 'a\nb', 'a\0b', 'a\u010ab', 'X A', 'X-A:', '');
  const entry = fc.oneof(token, fieldValue, bad);
  const edit = fc.oneof(
    fc.tuple(fc.constant('push' as const), entry, entry),
    fc.tuple(fc.constant('set' as const), fc.nat(), entry),
    fc.tuple(fc.constant('remove' as const), fc.nat(), fc.constant('')),
    fc.tuple(fc.constant('swap' as const), fc.nat(), fc.nat()),
  );
  const ows = fc.constantFrom('', ' ', '\t', '  ', ' \t');
  // Mostly `name: value` lines, which a writer forwards as they came; now and then other whitespace, and then it writes them anew.
  const spacing = fc.oneof({ arbitrary: fc.constant([' ', ''] as const), weight: 12 }, { arbitrary: fc.tuple(ows, ows), weight: 1 });
  const lines = fields.chain((list) => fc.array(spacing, { minLength: list.length / 2, maxLength: list.length / 2 }).map((spaces) => ({ list, spaces })));
  const write = (headers: string[], received?: ReceivedHead) => {
    try {
      return [requestHead('GET', '/', headers, undefined, 'h', 'Host', received), responseHead(200, '', headers, undefined, received)];
    } catch (err) {
      return err instanceof Http1SerializeError ? `refused ${err.field}` : `threw ${String(err)}`;
    }
  };
  /** The header lists the written heads read back as (Host, which the request head adds, left out). */
  const readBack = (written: string[] | string) => {
    if (typeof written === 'string') return written;
    const [req, res] = written.map((w, i) => {
      const events = record(i === 0 ? 'request' : 'response', w, { expect: ['GET'] });
      const head = events[0];
      return head?.type === 'head' ? head.head.headers : `unreadable ${JSON.stringify(events)}`;
    });
    return JSON.stringify([typeof req === 'string' ? req : req!.slice(2), res]);
  };
  let sliced = 0;
  fc.assert(
    fc.property(lines, fc.array(edit, { maxLength: 4 }), fc.oneof(fc.constant<number[]>([]), fc.array(fc.nat(), { maxLength: 3 })), ({ list, spaces }, edits, cuts) => {
      let text = 'GET / HTTP/1.1\r\nHost: h\r\n';
      for (let k = 0; k < list.length; k += 2) text += `${list[k]}:${spaces[k / 2]![0]}${list[k + 1]}${spaces[k / 2]![1]}\r\n`;
      let head: Head | undefined;
      const parser = new Http1Parser('request', { onHead: (h) => void (head = h), onBody() {}, onMessageEnd() {}, onError: (err) => t.fail(err.message) }, LIMITS);
      for (const piece of cut(text + '\r\n', cuts)) parser.execute(piece);
      if (!head) return false;
      if (head.text !== undefined) sliced++;
      // Host leaves the list, as the proxy's downstream side takes it out, and is written first.
      const headers = head.headers.slice(2);
      for (const [op, a, b] of edits) {
        const n = headers.length;
        if (op === 'push') headers.push(a, b);
        else if (op === 'set' && n > 0) headers[a % n] = b;
        else if (op === 'remove' && n > 0) headers.splice((a % (n / 2)) * 2, 2);
        else if (op === 'swap' && n > 0) [headers[a % n], headers[b % n]] = [headers[b % n]!, headers[a % n]!];
      }
      const anew = write(headers);
      if (typeof anew !== 'string' && readBack(anew) !== JSON.stringify([headers, headers])) return agrees(t, readBack(anew), JSON.stringify([headers, headers]), 'written anew');
      return agrees(t, readBack(write(headers, head)), readBack(anew), JSON.stringify({ text, cuts, headers }));
    }),
    { numRuns: 3000 },
  );
  t.ok(sliced > 1000, `many heads were read whole, their lines forwardable as read (${sliced} of 3 000)`);
});

// The lines a proxy forwards unchanged are the bytes it received: a run of them is one
// slice of the head; what a layer removed or added is not. A head with other whitespace
// around a value is written anew, one space after each colon.
t.test('unchanged field lines are written as they were received', async (t) => {
  const parsed = (text: string) => {
    let head: Head | undefined;
    new Http1Parser('request', { onHead: (h) => void (head = h), onBody() {}, onMessageEnd() {}, onError: (err) => t.fail(err.message) }, LIMITS).execute(Buffer.from(text, 'latin1'));
    return head!;
  };
  const edited = (head: Head) => {
    const headers = head.headers.filter((_, i, all) => !['host', 'connection', 'x-gone'].includes(all[i - (i % 2)]!.toLowerCase()));
    headers.push('C', '4');
    return headers;
  };
  const plain = parsed('GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nConnection: x-gone\r\nX-Gone: 2\r\nB: 3\r\nE: 6\r\n\r\n');
  t.equal(plain.text?.slice(plain.start, plain.start + 9), 'Host: h\r\n', 'the lines are known from the first');
  const headers = edited(plain);
  t.equal(requestHead('GET', '/', headers, ['D', '5'], 'h', 'Host', plain), 'GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 3\r\nE: 6\r\nC: 4\r\nD: 5\r\n\r\n');
  headers[1] = '9';
  t.equal(requestHead('GET', '/', headers, undefined, 'h', 'Host', plain), 'GET / HTTP/1.1\r\nHost: h\r\nA: 9\r\nB: 3\r\nE: 6\r\nC: 4\r\n\r\n', 'a changed value is written anew');
  const spaced = parsed('GET / HTTP/1.1\r\nHost: h\r\nA:  1 \r\nB:3\r\n\r\n');
  t.equal(spaced.text, undefined, 'a head with other whitespace has no text to forward');
  t.equal(requestHead('GET', '/', edited(spaced), undefined, 'h', 'Host', spaced), 'GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 3\r\nC: 4\r\n\r\n');
  // What the request line and status line say is checked again unless it is what was read.
  t.throws(() => requestHead('GET', '/a b', headers, undefined, 'h', 'Host', plain), Http1SerializeError, 'a target a layer changed is checked');
  t.throws(() => requestHead('GE T', '/', headers, undefined, 'h', 'Host', plain), Http1SerializeError, 'a method a layer changed is checked');
  t.throws(() => responseHead(200, 'O\nK', headers, undefined, plain), Http1SerializeError, 'a reason a layer changed is checked');
  t.throws(() => requestHead('GET', '/', headers, undefined, 'h\r\nX: 1', 'Host', plain), Http1SerializeError, 'a Host value a layer changed is checked');
  // The same line twice, in two reads: two strings alike, neither one holding both lines.
  let twice: Head | undefined;
  const parser = new Http1Parser('request', { onHead: (h) => void (twice = h), onBody() {}, onMessageEnd() {}, onError: (err) => t.fail(err.message) }, LIMITS);
  for (const piece of ['GET / HTTP/1.1\r\n', 'A: 1\r\n', 'A: 1\r\n', '\r\n']) parser.execute(Buffer.from(piece, 'latin1'));
  t.equal(requestHead('GET', '/', twice!.headers, undefined, 'h', 'Host', twice!), 'GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nA: 1\r\n\r\n', 'lines read apart are not taken for one text');
});
