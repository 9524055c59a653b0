import fc from 'fast-check';
import t from 'tap';
import { Http1Parser, type Head } from '../../../src/proxy/http/h1/parser.ts';
import { DropNames, endToEnd, endToEndMarked, MARKS_INCOMPLETE, MESH_HEADERS } from '../../../src/proxy/http/headers.ts';
import { agrees } from '../../helpers/property.ts';

// The HTTP/1.1 parser marks a head's connection-level fields as it reads their names
// (Head.marks), so the proxy drops them without comparing names again. Whatever a head
// holds, dropping the marked fields must keep exactly what the filter by name keeps, and
// the Host, Content-Type and meshlet-peer-metadata positions must be those of the names.

const REQUEST_DROP = new DropNames(['host', ...MESH_HEADERS]);
const RESPONSE_DROP = new DropNames(MESH_HEADERS);

function parse(kind: 'request' | 'response', text: string): Head {
  let head: Head | undefined;
  const parser = new Http1Parser(
    kind,
    {
      onHead: (h) => void (head = h),
      onBody: () => {},
      onMessageEnd: () => {},
      onError: (err) => {
        throw err;
      },
    },
    { maxHeadBytes: 64 * 1024, maxHeaders: 200 },
  );
  parser.execute(Buffer.from(text, 'latin1'));
  if (!head) throw new Error('no head');
  return head;
}

const casing = (name: string) => fc.constantFrom(name, name.toUpperCase(), name[0]!.toUpperCase() + name.slice(1));
const name = fc.oneof(
  fc.constantFrom('connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'http2-settings', 'host', 'content-type', ...MESH_HEADERS).chain(casing),
  // Names of the same lengths as marked ones, and others.
  fc.constantFrom('tf', 'hosts', 'hast', 'x-a', 'accept', 'user-agent', 'x-request-id', 'proxy-connectio-', 'meshlet-protocols', 'meshlet-header-cas', 'meshlet-peer-metadat', 'meshlet-peer-metadata2'),
);
const value = fc.constantFrom('keep-alive', 'close', 'upgrade', 'x-a', 'X-A, x-b', 'keep-alive, accept', 'trailers', 'gzip, trailers', 'te', 'text/plain', '1', 'v');
const fields = fc.array(fc.tuple(name, value), { maxLength: 40 });

function head(kind: 'request' | 'response', pairs: Array<[string, string]>): string {
  const start = kind === 'request' ? 'GET / HTTP/1.1\r\n' : 'HTTP/1.1 200 OK\r\n';
  return start + pairs.map(([n, v]) => `${n}: ${v}\r\n`).join('') + (kind === 'response' ? 'Content-Length: 0\r\n' : '') + '\r\n';
}

function first(list: string[], lower: string): number {
  for (let i = 0; i < list.length; i += 2) if (list[i]!.toLowerCase() === lower) return i;
  return -1;
}

for (const kind of ['request', 'response'] as const) {
  t.test(`${kind}s: dropping the marked fields keeps what the filter by name keeps`, async (t) => {
    const drop = kind === 'request' ? REQUEST_DROP : RESPONSE_DROP;
    let incomplete = 0;
    fc.assert(
      fc.property(fields, (pairs) => {
        const parsed = parse(kind, head(kind, pairs));
        const list = parsed.headers;
        const want = endToEnd([...list], drop);
        const positions = {
          hostAt: kind === 'request' ? first(list, 'host') : -1,
          hosts: kind === 'request' ? list.filter((n, i) => i % 2 === 0 && n.toLowerCase() === 'host').length : 0,
          metadataAt: first(list, 'meshlet-peer-metadata'),
          contentTypeAt: first(list, 'content-type'),
        };
        const got = { hostAt: parsed.hostAt, hosts: parsed.hosts, metadataAt: parsed.metadataAt, contentTypeAt: parsed.contentTypeAt };
        if ((parsed.marks & MARKS_INCOMPLETE) !== 0) incomplete++;
        const kept = endToEndMarked(list, parsed.marks, drop);
        return agrees(t, { kept, inPlace: kept === list, ...got }, { kept: want, inPlace: true, ...positions }, JSON.stringify(pairs));
      }),
      { numRuns: 1500 },
    );
    t.ok(incomplete > 0, `some heads had incomplete marks (${incomplete}), so the fallback ran too`);
  });
}

t.test('a plain head marks exactly its connection-level fields', async (t) => {
  const request = parse('request', 'GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nmeshlet-peer-metadata: m\r\nx-request-id: 1\r\n\r\n');
  t.equal(request.marks, 0b101, 'Host and meshlet-peer-metadata');
  const response = parse('response', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: d\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nabc');
  t.equal(response.marks, 0b1100, 'Connection and Keep-Alive; Content-Length is the framing, not dropped');
  t.equal(parse('response', 'HTTP/1.1 200 OK\r\nHost: h\r\nContent-Length: 0\r\n\r\n').marks, 0, 'Host in a response is an end-to-end field');
  t.equal(parse('request', 'GET / HTTP/1.1\r\nConnection: x-hop\r\nx-hop: 1\r\n\r\n').marks & MARKS_INCOMPLETE, MARKS_INCOMPLETE, 'a Connection header that names a field');
  const many = Array.from({ length: 31 }, (_, i) => `x-${i}: v\r\n`).join('');
  t.equal(parse('request', `GET / HTTP/1.1\r\n${many}TE: trailers\r\n\r\n`).marks, MARKS_INCOMPLETE, 'a marked field past the 30th');
});

t.test('marks and positions belong to one message: the next one on the connection starts afresh', async (t) => {
  const heads: Head[] = [];
  const parser = new Http1Parser(
    'request',
    { onHead: (h) => void heads.push(h), onBody: () => {}, onMessageEnd: () => {}, onError: (err) => t.fail(err.message) },
    { maxHeadBytes: 64 * 1024, maxHeaders: 200 },
  );
  parser.execute(Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nmeshlet-peer-metadata: t\r\n\r\nGET / HTTP/1.1\r\nx: 1\r\n\r\n', 'latin1'));
  t.equal(heads.length, 2);
  t.equal(heads[0]!.marks, 0b11);
  t.same([heads[1]!.marks, heads[1]!.hostAt, heads[1]!.hosts, heads[1]!.metadataAt], [0, -1, 0, -1], 'a trailer named like a mesh header marks nothing');
});
