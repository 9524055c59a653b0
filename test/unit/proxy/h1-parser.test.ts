import t from 'tap';
import { Http1ParseError, Http1Parser, type Head, type ParserEvents } from '../../../src/proxy/http/h1/parser.ts';
import { chunkHeader, CRLF, Http1SerializeError, reasonPhrase, requestHead, responseHead, trailerBlock } from '../../../src/proxy/http/h1/serialize.ts';
import { failureOf, LIMITS, record, type Event, type RecordedHead } from '../../fixtures/h1-corpus/record.ts';

const b = (s: string) => Buffer.from(s, 'latin1');
const heads = (events: Event[]): RecordedHead[] => events.flatMap((e) => (e.type === 'head' ? [e.head] : []));
/** Event kinds in order, with bodies and trailers: enough to compare runs. */
const trace = (events: Event[]) =>
  events.map((e) => (e.type === 'head' ? `head ${e.head.method || e.head.status} ${e.head.target}` : e.type === 'body' ? `body ${e.data}` : e.type === 'end' ? `end ${e.trailers.join('|')}` : `error ${e.failure}`));

/** Splits s at the given offsets. */
const splitAt = (s: string, ...at: number[]) => {
  const out: Buffer[] = [];
  let prev = 0;
  for (const i of at) {
    out.push(b(s.slice(prev, i)));
    prev = i;
  }
  out.push(b(s.slice(prev)));
  return out.filter((x) => x.length > 0);
};

/** A parser that records events, with hooks to steer it from inside the callbacks. */
function harness(kind: 'request' | 'response', hooks: Partial<ParserEvents> = {}, limits = LIMITS) {
  const log: string[] = [];
  const parser = new Http1Parser(
    kind,
    {
      onHead: (h) => {
        log.push(`head ${h.method || h.status}`);
        return hooks.onHead?.(h);
      },
      onBody: (c) => {
        log.push(`body ${c.toString('latin1')}`);
        hooks.onBody?.(c);
      },
      onMessageEnd: (tr) => {
        log.push(`end${tr.length ? ' ' + tr.join('|') : ''}`);
        return hooks.onMessageEnd?.(tr);
      },
      onError: (e) => {
        log.push(`error ${e.failure}`);
        hooks.onError?.(e);
      },
    },
    limits,
  );
  return { parser, log };
}

t.test('a request head: fields as received, framing, keep-alive', async (t) => {
  const events = record('request', 'GET /a/b?c=d HTTP/1.1\r\nHost: example.test\r\nX-Twice:  one \t\r\nx-twice: two\r\nAccept:*/*\r\nEmpty:\r\n\r\n');
  t.equal(failureOf(events), undefined);
  const [head] = heads(events);
  t.match(head, { method: 'GET', target: '/a/b?c=d', status: 0, reason: '', versionMinor: 1, framing: 'none', contentLength: 0, keepAlive: true, upgrade: false, expectContinue: false });
  t.same(head!.headers, ['Host', 'example.test', 'X-Twice', 'one', 'x-twice', 'two', 'Accept', '*/*', 'Empty', ''], 'case, order and duplicates kept; OWS trimmed');
  t.same(trace(events), ['head GET /a/b?c=d', 'end ']);
});

t.test('keep-alive: HTTP/1.1 unless close; HTTP/1.0 only with keep-alive', async (t) => {
  const ka = (s: string) => heads(record('request', s))[0]?.keepAlive;
  t.equal(ka('GET / HTTP/1.1\r\n\r\n'), true);
  t.equal(ka('GET / HTTP/1.1\r\nConnection: Close\r\n\r\n'), false);
  t.equal(ka('GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n'), false);
  t.equal(ka('GET / HTTP/1.0\r\n\r\n'), false);
  t.equal(ka('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n'), true);
  t.equal(heads(record('response', 'HTTP/1.1 200 OK\r\n\r\nbody', { finish: true }))[0]?.keepAlive, false, "never with 'eof' framing");
});

t.test('after a message without keep-alive, the rest is ignored (RFC 9112 9.6)', async (t) => {
  const { parser, log } = harness('request');
  parser.execute(b('GET /1 HTTP/1.1\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'));
  parser.execute(b('GET /3 HTTP/1.1\r\n\r\n'));
  parser.finish();
  t.same(log, ['head GET', 'end']);
  t.equal(parser.closed, true);
  t.equal(parser.takeBuffered().length, 0);
});

t.test('bodies: Content-Length and chunked, zero-copy', async (t) => {
  const input = b('POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=1;b="x\\"y"\r\nabc\r\n0\r\nX-Sum: 9\r\nX-Two: 2\r\n\r\n');
  const chunks: Buffer[] = [];
  const hs: Head[] = [];
  const trailers: string[][] = [];
  const parser = new Http1Parser('request', { onHead: (h) => void hs.push(h), onBody: (c) => void chunks.push(c), onMessageEnd: (tr) => void trailers.push(tr), onError: (e) => t.fail(e.message) }, LIMITS);
  parser.execute(input);
  t.match(hs, [{ framing: 'length', contentLength: 5 }, { framing: 'chunked', contentLength: 0 }]);
  t.same(chunks.map((c) => c.toString()), ['hello', 'abc']);
  t.ok(chunks.every((c) => c.buffer === input.buffer), 'bodies are views of the input');
  t.same(trailers, [[], ['X-Sum', '9', 'X-Two', '2']]);
  t.equal(parser.idle, true);
});

t.test('bodiesCopied: the same bodies, as copies that outlive the read buffer', async (t) => {
  const text = 'POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
  const read = Buffer.alloc(text.length + 8);
  const chunks: Buffer[] = [];
  const parser = new Http1Parser('request', { onHead: () => {}, onBody: (c) => void chunks.push(c), onMessageEnd: () => {}, onError: (e) => t.fail(e.message) }, LIMITS);
  parser.bodiesCopied = true;
  read.write(text, 'latin1');
  parser.execute(read, text.length);
  read.fill(0x58);
  t.same(chunks.map((c) => c.toString()), ['hello', 'abc'], 'unchanged after the read buffer is overwritten');
  t.ok(chunks.every((c) => c.buffer !== read.buffer), 'copies, not views');
});

t.test('split at every byte position: the same events as in one piece', async (t) => {
  const pairs: Array<{ kind: 'request' | 'response'; input: string; expect?: string[] }> = [
    {
      kind: 'request',
      input:
        'POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;name="v\\"1";x\r\nhello\r\n0\r\nX-T: 1\r\n\r\n' +
        '\r\nGET /next HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc',
    },
    {
      kind: 'response',
      input: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n',
      expect: ['POST', 'GET'],
    },
  ];
  for (const { kind, input, expect } of pairs) {
    const whole = trace(record(kind, input, { expect }));
    t.equal(whole.filter((e) => e.startsWith('end')).length, 2, `${kind}: two messages`);
    let same = 0;
    for (let i = 1; i < input.length; i++) {
      const split = trace(record(kind, splitAt(input, i), { expect }));
      if (JSON.stringify(split) === JSON.stringify(whole)) same++;
      else t.same(split, whole, `split at ${i}`);
    }
    t.equal(same, input.length - 1, `${kind}: all ${input.length - 1} splits agree`);
    t.same(trace(record(kind, [...b(input)].map((x) => Buffer.from([x])), { expect })), whole, `${kind}: one byte at a time`);
  }
});

t.test('a refused input fails the same way however it is split', async (t) => {
  const input = 'GET / HTTP/1.1\r\nHost: a\r\nX-A: ok\r\nX-B: a\x00b\r\nX-C: c\nX-D: d\r\n\r\n';
  for (let i = 1; i < input.length; i++) t.equal(failureOf(record('request', splitAt(input, i))), 'invalid_header_value', `split at ${i}`);
});

t.test('pause and resume', async (t) => {
  t.test('onHead returning false holds the body until resume()', async (t) => {
    const { parser, log } = harness('request', { onHead: () => false });
    parser.execute(b('POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab'));
    t.same(log, ['head POST']);
    parser.execute(b('cd'));
    t.same(log, ['head POST'], 'bytes fed while paused are only buffered');
    t.equal(parser.inMessage, true);
    parser.resume();
    t.same(log, ['head POST', 'body abcd', 'end']);
  });
  t.test('onMessageEnd returning false holds the next pipelined message', async (t) => {
    const { parser, log } = harness('request', { onMessageEnd: () => false });
    parser.execute(b('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n'));
    t.same(log, ['head GET', 'end']);
    t.equal(parser.idle, false, 'not idle: bytes are buffered');
    parser.resume();
    t.same(log, ['head GET', 'end', 'head GET', 'end']);
    parser.resume();
    parser.resume();
    t.same(log, ['head GET', 'end', 'head GET', 'end', 'head GET', 'end']);
    t.equal(parser.idle, true);
  });
  t.test('a head without body paused by onHead ends on resume', async (t) => {
    const { parser, log } = harness('request', { onHead: () => false });
    parser.execute(b('GET / HTTP/1.1\r\n\r\n'));
    t.same(log, ['head GET']);
    t.equal(parser.inMessage, true);
    parser.resume();
    t.same(log, ['head GET', 'end']);
  });
  t.test('pause() from onBody stops at once; takeBuffered() hands over the rest', async (t) => {
    const { parser, log } = harness('request', { onBody: () => parser.pause() });
    parser.execute(b('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n'));
    t.same(log, ['head POST', 'body ab']);
    t.equal(parser.takeBuffered().toString(), '\r\n2\r\ncd\r\n0\r\n\r\n');
    t.equal(parser.takeBuffered().length, 0, 'forgotten once taken');
  });
  t.test('bytes fed from inside a callback come after the rest of the current input', async (t) => {
    let fed = false;
    const { parser, log } = harness('request', {
      onHead: () => {
        if (!fed) {
          fed = true;
          parser.execute(b('GET /3 HTTP/1.1\r\n\r\n'));
        }
      },
    });
    parser.execute(b('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n'));
    t.equal(log.length, 6);
    t.equal(parser.idle, true);
  });
});

t.test('the caller may reuse its read buffer after execute()', async (t) => {
  const input = 'POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\n\r\n';
  const { parser, log } = harness('request', { onMessageEnd: () => false });
  const scratch = Buffer.alloc(16);
  // 16 bytes at a time through one buffer that is overwritten after every call
  for (let i = 0; i < input.length; i += 16) {
    const n = scratch.write(input.slice(i, i + 16), 'latin1');
    parser.execute(scratch.subarray(0, n));
    scratch.fill(0x58);
  }
  t.same(log, ['head POST', 'body abc', 'end'], 'paused after the first message, the rest buffered');
  parser.resume();
  t.same(log, ['head POST', 'body abc', 'end', 'head GET', 'end']);
});

t.test('expect(): HEAD, CONNECT, 1xx and 101 on the response side', async (t) => {
  t.test('a response to HEAD has no body, whatever its headers say', async (t) => {
    const events = record('response', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', { expect: ['HEAD', 'GET'] });
    t.same(trace(events), ['head 200 ', 'end ', 'head 200 ', 'body ok', 'end ']);
    t.equal(heads(events)[0]!.framing, 'none');
  });
  t.test('204 and 304 have no body', async (t) => {
    t.same(trace(record('response', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n')), ['head 304 ', 'end ', 'head 204 ', 'end ']);
  });
  t.test('1xx interim heads do not use up the expectation', async (t) => {
    const events = record('response', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n', { expect: ['HEAD'] });
    t.same(trace(events), ['head 100 ', 'head 103 ', 'head 200 ', 'end '], 'no onMessageEnd for interim heads; the 200 answers HEAD');
    t.same(heads(events).map((h) => h.framing), ['none', 'none', 'none']);
  });
  t.test('the parser is in a message between a 1xx and the final head', async (t) => {
    const { parser, log } = harness('response');
    parser.execute(b('HTTP/1.1 100 Continue\r\n\r\n'));
    t.equal(parser.inMessage, true);
    parser.finish();
    t.same(log, ['head 100', 'error incomplete_message']);
  });
  t.test('2xx to CONNECT: upgrade, the rest is the tunnel', async (t) => {
    const { parser, log } = harness('response');
    parser.expect('CONNECT');
    parser.execute(b('HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01tls'));
    parser.execute(b('more'));
    t.same(log, ['head 200']);
    t.equal(parser.upgraded, true);
    t.equal(parser.takeBuffered().toString('latin1'), '\x16\x03\x01tlsmore');
    parser.finish();
    t.same(log, ['head 200'], 'finish() after an upgrade does nothing');
  });
  t.test('a refused CONNECT has its body', async (t) => {
    const events = record('response', 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope', { expect: ['CONNECT'] });
    t.same(trace(events), ['head 407 ', 'body nope', 'end ']);
    t.equal(heads(events)[0]!.upgrade, false);
  });
  t.test('101 is final and an upgrade', async (t) => {
    const { parser, log } = harness('response');
    parser.expect('GET');
    parser.expect('GET');
    parser.execute(b('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello'));
    t.same(log, ['head 101']);
    t.equal(parser.takeBuffered().toString('latin1'), '\x81\x05hello');
  });
  t.test("no CL, no chunked: read until the peer closes ('eof')", async (t) => {
    const { parser, log } = harness('response');
    parser.execute(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\npart 1 '));
    parser.execute(b('part 2'));
    parser.finish();
    t.same(log, ['head 200', 'body part 1 ', 'body part 2', 'end']);
  });
});

t.test('upgrade requests: the parser stops after the head', async (t) => {
  const { parser, log } = harness('request');
  parser.execute(b('GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x85frame'));
  t.same(log, ['head GET']);
  t.equal(parser.upgraded, true);
  t.equal(parser.inMessage, false);
  parser.execute(b('+more'));
  t.equal(parser.takeBuffered().toString('latin1'), '\x81\x85frame+more');
  const connect = heads(record('request', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n'))[0];
  t.match(connect, { method: 'CONNECT', target: 'example.test:443', upgrade: true });
  t.equal(heads(record('request', 'GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n'))[0]!.upgrade, false, 'Upgrade without Connection: upgrade is not one');
});

t.test('Expect: 100-continue', async (t) => {
  t.equal(heads(record('request', 'PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n'))[0]!.expectContinue, true);
  t.equal(heads(record('request', 'PUT / HTTP/1.1\r\nExpect: something\r\n\r\n'))[0]!.expectContinue, false);
});

t.test('finish()', async (t) => {
  const ended = (kind: 'request' | 'response', input: string) => {
    const { parser, log } = harness(kind);
    parser.execute(b(input));
    parser.finish();
    return log;
  };
  t.same(ended('request', 'GET / HTTP/1.1\r\n\r\n'), ['head GET', 'end'], 'between messages: nothing');
  t.same(ended('request', ''), [], 'before anything: nothing');
  t.same(ended('request', '\r\n'), [], 'after an empty line only: nothing');
  t.same(ended('request', 'GET / HT'), ['error incomplete_message'], 'in a head');
  t.same(ended('request', 'POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel'), ['head POST', 'body hel', 'error incomplete_message'], 'in a body');
  t.same(ended('request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n'), ['head POST', 'error incomplete_message'], 'in trailers');
  t.same(ended('response', 'HTTP/1.0 200 OK\r\n\r\nall of it'), ['head 200', 'body all of it', 'end'], "'eof' framing ends the message");
  t.test('while paused: once the buffered bytes are parsed', async (t) => {
    const { parser, log } = harness('request', { onHead: () => false });
    parser.execute(b('POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok'));
    parser.finish();
    t.same(log, ['head POST']);
    parser.resume();
    t.same(log, ['head POST', 'body ok', 'end']);
    t.equal(parser.closed, true);
  });
});

t.test('limits', async (t) => {
  const limits = { maxHeadBytes: 256, maxHeaders: 4 };
  const headOf = (size: number) => {
    const start = 'GET / HTTP/1.1\r\nX: ';
    return start + 'a'.repeat(size - start.length - 4) + '\r\n\r\n';
  };
  t.equal(headOf(256).length, 256);
  t.equal(failureOf(record('request', headOf(256), { limits })), undefined, 'a head of exactly maxHeadBytes');
  t.equal(failureOf(record('request', headOf(257), { limits })), 'head_too_large', 'one byte more');
  for (let i = 1; i < 257; i += 17) t.equal(failureOf(record('request', splitAt(headOf(257), i), { limits })), 'head_too_large', `one byte more, split at ${i}`);

  t.test('a never-ending head is refused once it reaches the limit', async (t) => {
    const { parser, log } = harness('request', {}, limits);
    parser.execute(b('GET / HTTP/1.1\r\nX: '));
    let fed = 19;
    while (log.length === 0 && fed < 10_000) {
      parser.execute(b('aaaaaaaaaa'));
      fed += 10;
    }
    t.same(log, ['error head_too_large']);
    t.ok(fed >= 256 && fed < 266, `refused after ${fed} bytes`);
  });
  t.test('a head ended by LF LF is refused at once, not at the limit', async (t) => {
    const { parser, log } = harness('request');
    parser.execute(b('GET / HTTP/1.1\nHost: a\n\n'));
    t.same(log, ['error bare_lf']);
  });

  const fields = (n: number) => 'GET / HTTP/1.1\r\n' + 'X: 1\r\n'.repeat(n) + '\r\n';
  t.equal(failureOf(record('request', fields(4), { limits })), undefined, 'maxHeaders fields');
  t.equal(failureOf(record('request', fields(5), { limits })), 'too_many_headers', 'one more');
  const chunkedWith = (trailer: string) => `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${trailer}\r\n`;
  t.equal(failureOf(record('request', chunkedWith(`X: ${'a'.repeat(200)}\r\n`), { limits })), undefined, 'trailers within the limit');
  t.equal(failureOf(record('request', chunkedWith(`X: ${'a'.repeat(300)}\r\n`), { limits })), 'trailers_too_large');
  t.equal(failureOf(record('request', chunkedWith('X: 1\r\n'.repeat(5)), { limits })), 'trailers_too_large', 'too many trailer fields');
});

t.test('errors: codes by side, one onError, then nothing', async (t) => {
  const errors: Http1ParseError[] = [];
  const events: string[] = [];
  const on = (kind: 'request' | 'response', input: string, limits = LIMITS) => {
    const p = new Http1Parser(kind, { onHead: () => void events.push('head'), onBody: () => void events.push('body'), onMessageEnd: () => void events.push('end'), onError: (e) => void errors.push(e) }, limits);
    p.execute(b(input));
    p.execute(b('GET / HTTP/1.1\r\n\r\n'));
    p.finish();
    return p;
  };
  const p = on('request', 'GET / HTTP/1.1\r\nA B: c\r\n\r\n');
  t.equal(p.closed, true);
  on('request', 'GET / HTTP/1.1\r\n' + 'X: 1\r\n'.repeat(5) + '\r\n', { maxHeadBytes: 1000, maxHeaders: 2 });
  on('request', 'GET / HTTP/1.1\r\nX: ' + 'a'.repeat(100), { maxHeadBytes: 50, maxHeaders: 2 });
  on('response', 'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n');
  on('response', 'HTTP/1.1 200 OK\r\n' + 'X: 1\r\n'.repeat(5) + '\r\n', { maxHeadBytes: 1000, maxHeaders: 2 });
  t.same(
    errors.map((e) => [e.failure, e.code, e.kind]),
    [
      ['invalid_header_name', 'MESHLET_ERR_BAD_REQUEST', 'request'],
      ['too_many_headers', 'MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE', 'request'],
      ['head_too_large', 'MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE', 'request'],
      ['invalid_content_length', 'MESHLET_ERR_UPSTREAM_PROTOCOL', 'response'],
      ['too_many_headers', 'MESHLET_ERR_UPSTREAM_PROTOCOL', 'response'],
    ],
  );
  t.same(events, [], 'nothing after an error');
  t.ok(errors.every((e) => e instanceof Http1ParseError && e.name === 'Http1ParseError' && e.message.includes(e.failure)));
});

t.test('request-target forms', async (t) => {
  const target = (line: string) => failureOf(record('request', `${line}\r\n\r\n`)) ?? 'ok';
  t.equal(target('GET /p?q=1#frag HTTP/1.1'), 'ok');
  t.equal(target('GET http://example.test HTTP/1.1'), 'ok');
  t.equal(target('GET https://u:p@example.test:8443/x?y HTTP/1.1'), 'ok');
  t.equal(target('GET http://[::1]:8080/ HTTP/1.1'), 'ok');
  t.equal(target('OPTIONS * HTTP/1.1'), 'ok');
  t.equal(target('CONNECT [::1]:443 HTTP/1.1'), 'ok');
  t.equal(target('GET http:// HTTP/1.1'), 'invalid_target', 'no authority');
  t.equal(target('GET http://a@b@c/ HTTP/1.1'), 'invalid_target', 'two @');
  t.equal(target('GET h1://a/ HTTP/1.1'), 'invalid_target', 'scheme of letters only (as llhttp)');
  t.equal(target('CONNECT /path HTTP/1.1'), 'invalid_target');
  t.equal(target('CONNECT user@host:443 HTTP/1.1'), 'invalid_target');
  t.equal(target('OPTIONS *x HTTP/1.1'), 'invalid_target');
});

t.test('status lines', async (t) => {
  const head = (line: string) => record('response', `${line}\r\nContent-Length: 0\r\n\r\n`);
  t.match(heads(head('HTTP/1.1 200 OK'))[0], { status: 200, reason: 'OK', versionMinor: 1 });
  t.match(heads(head('HTTP/1.0 404 Not\tFound \xe9'))[0], { status: 404, reason: 'Not\tFound \xe9', versionMinor: 0 });
  t.match(heads(head('HTTP/1.1 200'))[0], { status: 200, reason: '' }, 'no reason and no space (as llhttp)');
  t.match(heads(head('HTTP/1.1 200 '))[0], { status: 200, reason: '' });
  t.equal(failureOf(head('HTTP/1.1 200x')), 'invalid_status');
  t.equal(failureOf(head('HTTP/1.1  200 OK')), 'invalid_status');
  t.equal(failureOf(head('HTTP/1.1 099 Low')), 'invalid_status');
  t.equal(failureOf(head('HTTP/1.1')), 'invalid_version');
  t.equal(failureOf(head('HTTPS/1.1 200 OK')), 'invalid_version');
});

t.test('Transfer-Encoding on the response side (RFC 9112 6.3)', async (t) => {
  const framing = (te: string) => heads(record('response', `HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n`, { finish: true }))[0]?.framing;
  t.equal(framing('chunked'), 'chunked');
  t.equal(framing('gzip, Chunked'), 'chunked');
  t.equal(framing('gzip'), 'eof');
  t.equal(framing('chunked, gzip'), 'eof', 'chunked not last: until close');
  t.equal(failureOf(record('response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n')), 'invalid_transfer_encoding');
});

t.test('leading empty lines: at most two', async (t) => {
  t.equal(failureOf(record('request', '\r\n\r\nGET / HTTP/1.1\r\n\r\n')), undefined);
  t.equal(failureOf(record('request', '\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n')), 'invalid_method');
  t.equal(failureOf(record('request', 'GET / HTTP/1.1\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n')), undefined, 'also between messages');
});

t.test('idle and inMessage', async (t) => {
  const { parser } = harness('request');
  t.equal(parser.idle, true);
  t.equal(parser.inMessage, false);
  parser.execute(b('POST / HTTP/1.1\r\nContent'));
  t.equal(parser.idle, false);
  t.equal(parser.inMessage, true);
  parser.execute(b('-Length: 3\r\n\r\nab'));
  t.equal(parser.inMessage, true);
  parser.execute(b('c'));
  t.equal(parser.idle, true);
  t.equal(parser.inMessage, false);
});

t.test('serializer', async (t) => {
  t.equal(requestHead('GET', '/a?b', ['Host', 'x', 'X-Two', '1', 'X-Two', '2']), 'GET /a?b HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n');
  t.equal(responseHead(200, '', ['Content-Length', '0']), 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  t.equal(responseHead(404, 'Nope', []), 'HTTP/1.1 404 Nope\r\n\r\n');
  t.equal(responseHead(599, '', []), 'HTTP/1.1 599 Unknown\r\n\r\n');
  t.equal(reasonPhrase(503), 'Service Unavailable');
  t.equal(trailerBlock([]), '0\r\n\r\n');
  t.equal(trailerBlock(['grpc-status', '0']), '0\r\ngrpc-status: 0\r\n\r\n');
  t.equal(chunkHeader(255), 'ff\r\n');
  t.equal(CRLF, '\r\n');
  const refused = (fn: () => unknown, field: string, what: string) => {
    let thrown: unknown;
    try {
      fn();
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof Http1SerializeError && thrown.code === 'MESHLET_ERR_UPSTREAM_PROTOCOL' && thrown.field === field && thrown.message.includes(JSON.stringify(field)), what);
  };
  refused(() => requestHead('GET', '/', ['X-A', 'a\r\nInjected: 1']), 'X-A', 'CRLF in a value');
  refused(() => requestHead('GET', '/', ['X-A', 'a\nb']), 'X-A', 'LF in a value');
  refused(() => requestHead('GET', '/', ['X-A', 'a\0b']), 'X-A', 'NUL in a value');
  refused(() => requestHead('GET', '/', ['X-A', 'a\u010ab']), 'X-A', 'U+010A, which latin1 would write as LF');
  refused(() => responseHead(200, '', ['X A', 'b']), 'X A', 'a name with a space');
  refused(() => responseHead(200, '', ['X-A:', 'b']), 'X-A:', 'a name with a colon');
  refused(() => responseHead(200, '', ['', 'b']), '', 'an empty name');
  refused(() => trailerBlock(['X\r\n', 'b']), 'X\r\n', 'CRLF in a trailer name');
  refused(() => requestHead('GET /x', '/', []), 'method', 'a method with a space');
  refused(() => requestHead('GET', '/a b', []), 'target', 'a target with a space');
  refused(() => requestHead('GET', '', []), 'target', 'an empty target');
  refused(() => responseHead(200, 'OK\r\nX: 1', []), 'reason', 'CRLF in a reason');
  refused(() => responseHead(20, '', []), 'status', 'a 2-digit status');
  refused(() => chunkHeader(0), 'chunk size', 'a zero chunk (the last-chunk is trailerBlock)');
  t.same(heads(record('response', responseHead(200, 'Fine', ['X', 'caf\xe9']) + trailerBlock([]).slice(0, 0)))[0]?.headers, ['X', 'caf\xe9'], 'obs-text passes');
});
