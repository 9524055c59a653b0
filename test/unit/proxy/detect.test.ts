import t from 'tap';
import { classify, classifyFinal, H2_PREFACE } from '../../../src/proxy/detect/classify.ts';

// What the first bytes of a connection say it carries. classify answers undefined while
// the bytes so far could still become something (the detect layer then reads on);
// classifyFinal is the verdict once no more bytes will come.

const b = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

t.test('TLS: a handshake record is TLS from its first byte, whatever follows', async (t) => {
  const clientHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
  t.equal(classify(clientHello), 'tls');
  t.equal(classify(clientHello.subarray(0, 1)), 'tls', 'one byte decides');
  t.equal(classifyFinal(clientHello.subarray(0, 1)), 'tls');
  // Other TLS record types (alert 0x15, application data 0x17) never open a connection.
  t.equal(classify(Buffer.from([0x17, 0x03, 0x03])), 'tcp');
});

t.test('HTTP/2 prior knowledge: the whole preface, and each prefix of it while it arrives', async (t) => {
  t.equal(classify(H2_PREFACE), 'h2');
  t.equal(classify(Buffer.concat([H2_PREFACE, Buffer.from([0, 0, 0x12, 0x04, 0, 0, 0, 0, 0])])), 'h2', 'with the SETTINGS frame behind it');
  for (let n = 1; n < H2_PREFACE.length; n++) {
    t.equal(classify(H2_PREFACE.subarray(0, n)), undefined, `${n} bytes of the preface: undecided`);
  }
  t.equal(classifyFinal(b('PRI * HTTP/2.0\r\n')), 'h2', 'most of the preface, then nothing: h2 (the HTTP/2 server refuses it)');
  t.equal(classifyFinal(b('PRI * ')), 'h2');
  t.equal(classifyFinal(b('PRI')), 'tcp', 'a bare "PRI": opaque');
  t.equal(classify(b('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n')), 'tcp', 'a wrong preface of full length: opaque');
  t.equal(classify(b('PRI / HTTP/1.1\r\n\r\n')), 'tcp', 'PRI is no HTTP/1.1 method');
});

t.test('HTTP/1.x: every common method, with the request line whole', async (t) => {
  const lines = [
    'GET / HTTP/1.1\r\n',
    'HEAD /index.html HTTP/1.1\r\n',
    'POST /api/v1/things?x=1 HTTP/1.1\r\n',
    'PUT /a HTTP/1.1\r\n',
    'DELETE /a/b HTTP/1.1\r\n',
    'PATCH /a HTTP/1.1\r\n',
    'OPTIONS * HTTP/1.1\r\n',
    'TRACE / HTTP/1.1\r\n',
    'CONNECT example.com:443 HTTP/1.1\r\n',
    'GET http://example.com/absolute-form HTTP/1.1\r\n',
    'GET / HTTP/1.0\r\n',
    'PROPFIND /dav HTTP/1.1\r\n',
    'M-SEARCH * HTTP/1.1\r\n',
    'GET / HTTP/1.1\n', // a bare LF: still HTTP; the parser decides whether it is acceptable
  ];
  for (const line of lines) {
    t.equal(classify(b(line)), 'http1', JSON.stringify(line));
    t.equal(classify(b(`${line}Host: a\r\n\r\n`)), 'http1', `${JSON.stringify(line)} with headers`);
  }
});

t.test('HTTP/1.x: a request line cut short is undecided, and HTTP once the target has begun', async (t) => {
  const line = 'GET /path HTTP/1.1\r\n';
  for (let n = 1; n < line.length - 1; n++) {
    t.equal(classify(b(line.slice(0, n))), undefined, `${JSON.stringify(line.slice(0, n))}: undecided`);
  }
  t.equal(classify(b(line.slice(0, -1))), undefined, 'all but the LF: undecided');
  t.equal(classifyFinal(b('GET /pa')), 'http1', 'the target has begun: HTTP (the server answers 400 or 408)');
  t.equal(classifyFinal(b('GET /path HTTP/1.1')), 'http1');
  t.equal(classifyFinal(b('GET ')), 'tcp', 'a method and a space only: opaque');
  t.equal(classifyFinal(b('GE')), 'tcp', 'part of a method: opaque');
  t.equal(classifyFinal(b('DELETE')), 'tcp');
});

t.test('HTTP/1.x: a target longer than the sniffing bound is still HTTP (the server answers 431), not opaque', async (t) => {
  t.equal(classify(b(`GET /${'a'.repeat(9000)}`)), 'http1', 'decided before the line ends');
  t.equal(classify(b(`GET /${'a'.repeat(9000)} HTTP/1.1\r\n`)), 'http1');
  t.equal(classify(b(`GET /${'a'.repeat(8000)}`)), undefined, 'within the bound: still waiting for the line');
  t.equal(classify(b(`GET /${'a'.repeat(8000)} HTTP/1.1\r\n`)), 'http1');
});

t.test('not HTTP: lower case, unknown methods, other versions, garbage', async (t) => {
  const cases = [
    'get / HTTP/1.1\r\n', // methods are case-sensitive
    'Get / HTTP/1.1\r\n',
    'FETCH / HTTP/1.1\r\n',
    'HELLO world\r\n',
    'GET / HTTP/2.0\r\n',
    'GET / HTTP/1.2\r\n',
    'GET / HTTPS/1.1\r\n',
    'GET  / HTTP/1.1\r\n', // two spaces
    'GET /a b HTTP/1.1\r\n', // a space inside the target
    'GET foo\r\n', // Redis inline command
    '*1\r\n$4\r\nPING\r\n', // Redis RESP
    'SSH-2.0-OpenSSH_9.6\r\n',
    'get key\r\n', // memcached
    ' GET / HTTP/1.1\r\n',
    '\r\nGET / HTTP/1.1\r\n',
  ];
  for (const c of cases) {
    t.equal(classify(b(c)), 'tcp', JSON.stringify(c));
    t.equal(classifyFinal(b(c)), 'tcp', `${JSON.stringify(c)} (final)`);
  }
});

t.test('binary: opaque at once, or after the bytes rule HTTP out', async (t) => {
  t.equal(classify(Buffer.from([0x00])), 'tcp');
  t.equal(classify(Buffer.from([0xff, 0xfe, 0x00, 0x01])), 'tcp');
  // MySQL-like and PostgreSQL-like openings.
  t.equal(classify(Buffer.from([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f])), 'tcp', 'PostgreSQL SSLRequest');
  t.equal(classify(Buffer.from('4a0000000a382e30', 'hex')), 'tcp');
  // Binary after a method name: the target would have to be whitespace-free, and binary is not.
  t.equal(classify(Buffer.concat([b('GET '), Buffer.from([0x01, 0x02, 0x20, 0x00, 0x0a])])), 'tcp');
  t.equal(classify(Buffer.concat([b('POST /'), Buffer.from([0x0d, 0x0a])])), 'tcp', 'the line ends without a version');
  t.equal(classifyFinal(Buffer.from([0x50])), 'tcp', 'a lone "P": opaque once nothing more comes');
  t.equal(classify(Buffer.from([0x50])), undefined, 'but undecided while more may come (POST, PUT, PRI...)');
});
