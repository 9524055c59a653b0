import t from 'tap';
import { errorResponse, rawErrorResponse } from '../../../src/proxy/http/error-response.ts';
import { caseOf, DropNames, endToEnd, restoreCase, toH2 } from '../../../src/proxy/http/headers.ts';
import { meshClientFraming, meshServerFraming } from '../../../src/proxy/http/mesh-framing.ts';
import { decodeMetadata, encodeMetadata } from '../../../src/proxy/http/peer-metadata.ts';
import { MeshletError } from '../../../src/errors.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

const request = proxyRequest;

t.test('hop-by-hop headers go, and so does every header Connection names; te: trailers stays', async (t) => {
  const out = endToEnd([
    'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'Proxy-Connection', 'x',
    'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'TE', 'trailers, deflate', 'Trailer', 'grpc-status',
    'X-Keep', 'yes', 'x-keep', 'twice',
  ]);
  t.same(out, ['TE', 'trailers', 'Trailer', 'grpc-status', 'X-Keep', 'yes', 'x-keep', 'twice']);
  t.same(endToEnd(['TE', 'gzip']), [], 'a TE without trailers is hop-by-hop only');
  t.same(endToEnd([':method', 'GET', ':path', '/', 'x-a', '1']), ['x-a', '1'], 'pseudo-headers go too');
  t.same(endToEnd(['Host', 'h', 'Connection', 'x-a', 'X-A', '1', 'X-B', '2'], new DropNames(['host'])), ['X-B', '2'], 'drop removes more in the same pass');
  t.same(endToEnd(['HOST', 'h', 'Accept', '*/*', 'Keep-Alive', '5', 'X-B', '2'], new DropNames(['host'])), ['Accept', '*/*', 'X-B', '2'], 'any case, without a Connection header too');
});

t.test('toH2 lower-cases names, folds repeats into lists and leaves Host to :authority', async (t) => {
  t.same(toH2(['Host', 'a', 'X-A', '1', 'x-a', '2', 'Cookie', 'c=1'], { ':path': '/' }), { ':path': '/', 'x-a': ['1', '2'], cookie: 'c=1' });
});

t.test('header-name case survives a lower-casing hop both ways', async (t) => {
  const original = ['Content-Type', 'text/plain', 'X-MiXeD', 'v', 'lower', 'l'];
  const names = caseOf(original);
  t.equal(names, 'Content-Type,X-MiXeD');
  const lowered = original.map((v, i) => (i % 2 === 0 ? v.toLowerCase() : v));
  t.same(restoreCase(lowered, names), original);
  t.equal(caseOf(['a', '1']), undefined, 'nothing to carry when all names are lower case');
  t.same(restoreCase(['x-a', '1', 'meshlet-protocol', 'http1', 'x-b', '2'], 'X-B', (name) => name.startsWith('meshlet-')), ['x-a', '1', 'X-B', '2'], 'restored and dropped in one pass');
  t.same(restoreCase(['x-a', '1'], undefined), ['x-a', '1']);
});

t.test('meshlet/h2 framing: what the outbound side adds, the inbound side reads and removes', async (t) => {
  const client = meshClientFraming({ name: 'cart', namespace: 'shop', app: 'cart', version: 'v1' });
  const server = meshServerFraming({ name: 'db', namespace: 'data', app: 'db', version: 'v2' });
  const req = request({ headers: ['X-MiXeD', 'v', 'accept', '*/*'] });
  const extra = client.requestHeaders(req);
  t.equal(extra['meshlet-protocol'], 'http1');
  t.equal(extra['meshlet-header-case'], 'HoSt,X-MiXeD');
  const onTheWire = Object.entries({ ...toH2(req.headers, {}), ...extra }).flatMap(([k, v]) => [k, String(v)]);
  const arrived = server.request(onTheWire);
  t.equal(arrived.protocol, 'http1');
  t.equal(arrived.hostName, 'HoSt');
  t.same(arrived.headers, ['X-MiXeD', 'v', 'accept', '*/*'], 'case restored, mesh headers gone');
  t.same(arrived.peer, { name: 'cart', namespace: 'shop', app: 'cart', version: 'v1' });

  const responseExtra = server.responseHeaders({ status: 200, headers: ['Set-Cookie', 'a=1'], body: undefined, flag: '-' }, req);
  const back = client.response({ status: 200, headers: ['set-cookie', 'a=1', ...Object.entries(responseExtra).flat()] }, req);
  t.same(back.headers, ['Set-Cookie', 'a=1']);
  t.equal(back.peer?.name, 'db');

  const h2 = server.request(['content-type', 'application/grpc', 'meshlet-protocol', 'h2']);
  t.equal(h2.protocol, 'h2');
  t.equal(h2.hostName, 'host');
  t.equal(server.request([]).protocol, 'h2', 'no meshlet-protocol: HTTP/2');
});

t.test('peer metadata: round trip, and anything malformed is ignored', async (t) => {
  const meta = { name: 'a,b', namespace: 'ns', app: 'x"y', version: '' };
  t.same(decodeMetadata(encodeMetadata(meta)), meta);
  t.equal(decodeMetadata('%%%'), undefined);
  t.equal(decodeMetadata(Buffer.from('[1,2').toString('base64url')), undefined);
  t.equal(decodeMetadata(undefined), undefined);
  t.same(decodeMetadata(Buffer.from('{"name":7}').toString('base64url')), { name: '', namespace: '', app: '', version: '' });
});

t.test('peer metadata: decoded once per value, the cache bounded, and what it hands out cannot be changed', async (t) => {
  const value = encodeMetadata({ name: 'cart', namespace: 'shop', app: 'cart', version: 'v1' });
  const first = decodeMetadata(value)!;
  t.equal(decodeMetadata(value), first, 'the same value gives the same object back');
  t.ok(Object.isFrozen(first), 'shared between requests, so frozen');
  t.equal(decodeMetadata('%%%'), undefined, 'a malformed value stays undefined when asked again');
  // Many distinct values (a peer varying its header) must not grow memory: every one still decodes right.
  const wrong: number[] = [];
  for (let i = 0; i < 1000; i++) {
    if (decodeMetadata(encodeMetadata({ name: `w${i}`, namespace: 'ns', app: 'a', version: '' }))?.name !== `w${i}`) wrong.push(i);
  }
  t.same(wrong, [], 'every distinct value decodes to its own workload');
  t.same(decodeMetadata(value), { name: 'cart', namespace: 'shop', app: 'cart', version: 'v1' }, 'still right after the cache was cleared');
});

t.test('proxy-made responses: status, meshlet-error, flag; gRPC-shaped for gRPC', async (t) => {
  const connect = new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused');
  const plain = errorResponse(connect, false);
  t.equal(plain.status, 503);
  t.equal(plain.flag, 'UF');
  const header = (headers: string[], name: string) => headers[headers.indexOf(name) + 1];
  t.equal(header(plain.headers, 'meshlet-error'), 'upstream_connect_failure');
  const grpc = errorResponse(connect, true);
  t.equal(grpc.status, 200);
  t.equal(grpc.body, undefined, 'trailers-only');
  t.equal(header(grpc.headers, 'grpc-status'), '14');
  t.equal(header(grpc.headers, 'meshlet-error'), 'upstream_connect_failure');
  t.equal(header(errorResponse(new MeshletError('MESHLET_ERR_UPSTREAM_TIMEOUT', 'slow'), true).headers, 'grpc-status'), '4');
  t.equal(errorResponse(new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'rst'), false).status, 503);
  t.equal(errorResponse(new MeshletError('MESHLET_ERR_UPSTREAM_PROTOCOL', 'junk'), false).status, 502);
  t.equal(errorResponse(new Error('a bug'), false).status, 502, 'an unclassified error is the proxy failing: 502');
  const raw = rawErrorResponse(new MeshletError('MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE', 'big'));
  t.match(raw, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  t.match(raw, /\r\nmeshlet-error: request_header_too_large\r\n/);
  t.match(raw, /\r\nConnection: close\r\n/);
});
