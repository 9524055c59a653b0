import t, { type Test } from 'tap';
import { h1App, header, RawClient, type H1App } from '../../helpers/http.ts';
import { through, TOPOLOGIES, type Topology } from '../../helpers/http-sidecars.ts';
import { until } from './mtls-harness.ts';

// HTTP/1.1 from a raw client (so what the proxy writes back is seen byte for byte) to a
// node:http app, through one outbound sidecar and through a sidecar pair (meshlet/h2
// between them): pipelining, keep-alive both sides, bodiless responses, 100-continue,
// trailers, bodies cut short, hop-by-hop headers, Host and header case, Date.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An app and the sidecars of `topology` in front of it, all gone when `t` ends. */
async function proxied(t: Test, topology: Topology, ...args: Parameters<typeof h1App>): Promise<{ app: H1App; port: number }> {
  const app = await h1App(...args);
  t.teardown(() => app.close());
  const { port } = await through(t, topology, () => app.port, { MESHLET_HTTP_REQUEST_ID: 'false' });
  return { app, port };
}

async function client(t: Test, port: number): Promise<RawClient> {
  const c = new RawClient(port);
  t.teardown(() => c.close());
  await new Promise((r) => c.socket.once('connect', r));
  return c;
}

const H = 'Host: app.example\r\n';

for (const topology of TOPOLOGIES) {
  t.test(topology === 'one' ? 'through one outbound sidecar' : 'through a sidecar pair over meshlet/h2 (mTLS)', async (t) => tests(t, topology));
}

function tests(t: Test, topology: Topology): void {
  t.test('pipelining: three requests written at once are answered in order, the slow first one first', async (t) => {
    const { app, port } = await proxied(t, topology, (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        const answer = () => res.end(`${req.url}${body ? `:${body}` : ''}`);
        // The first is slow at the app: a proxy answering in completion order would put it last.
        if (req.url === '/slow') setTimeout(answer, 300);
        else answer();
      });
    });
    const c = await client(t, port);
    c.write(`GET /slow HTTP/1.1\r\n${H}\r\nPOST /with-body HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloGET /third HTTP/1.1\r\n${H}\r\n`);
    const responses = await c.read(['GET', 'POST', 'GET']);
    t.same(
      responses.map((r) => [r.status, r.body.toString()]),
      [
        [200, '/slow'],
        [200, '/with-body:hello'],
        [200, '/third'],
      ],
    );
    t.same(
      app.requests.map((r) => r.url),
      ['/slow', '/with-body', '/third'],
      'each reached the app once',
    );
    t.notOk(c.closed, 'the connection stays open');
  });

  t.test('keep-alive: many sequential requests on one client connection use one upstream connection', async (t) => {
    const { app, port } = await proxied(t, topology, (req, res) => {
      req.resume();
      req.on('end', () => res.end(req.url));
    });
    const c = await client(t, port);
    const n = 25;
    for (let i = 0; i < n; i++) {
      const body = i % 2 ? `body-${i}` : '';
      c.write(`${body ? 'POST' : 'GET'} /r${i} HTTP/1.1\r\n${H}${body ? `Content-Length: ${body.length}\r\n` : ''}\r\n${body}`);
      const [r] = await c.read([body ? 'POST' : 'GET']);
      t.equal(r?.body.toString(), `/r${i}`);
    }
    t.equal(app.requests.length, n);
    t.equal(app.connections, 1, 'the app saw one connection for all of them');
    t.notOk(c.closed);
  });

  t.test('HEAD, 204 and 304: no body, and the connection stays usable afterwards', async (t) => {
    const { port } = await proxied(t, topology, (req, res) => {
      req.resume();
      if (req.url === '/head') res.writeHead(200, { 'Content-Length': '1000', 'Content-Type': 'text/plain' }).end();
      else if (req.url === '/no-content') res.writeHead(204, { 'X-Kind': '204' }).end();
      else if (req.url === '/not-modified') res.writeHead(304, { ETag: '"v1"' }).end();
      else if (req.url === '/head-chunked') res.writeHead(200, { 'Content-Type': 'text/plain' }).end();
      else res.end(`after ${req.url}`);
    });
    const c = await client(t, port);
    // One at a time, then all of them pipelined: a stray body byte would break the next response's parse.
    const requests: Array<[string, string]> = [
      ['HEAD', '/head'],
      ['GET', '/no-content'],
      ['GET', '/not-modified'],
      ['HEAD', '/head-chunked'],
      ['GET', '/after'],
    ];
    const check = (responses: Awaited<ReturnType<RawClient['read']>>) => {
      t.same(
        responses.map((r) => r.status),
        [200, 204, 304, 200, 200],
      );
      t.equal(header(responses[0]!, 'content-length'), '1000', "HEAD: the app's Content-Length is passed on");
      t.equal(responses[0]!.body.length, 0, 'HEAD: no body');
      t.equal(header(responses[1]!, 'transfer-encoding'), undefined, '204: no framing header');
      t.equal(header(responses[1]!, 'content-length'), undefined);
      t.equal(header(responses[1]!, 'x-kind'), '204');
      t.equal(header(responses[2]!, 'etag'), '"v1"');
      t.equal(header(responses[2]!, 'transfer-encoding'), undefined, '304: no framing header');
      t.equal(responses[4]!.body.toString(), 'after /after');
    };
    const oneByOne = [];
    for (const [method, path] of requests) {
      c.write(`${method} ${path} HTTP/1.1\r\n${H}\r\n`);
      oneByOne.push(...(await c.read([method])));
    }
    check(oneByOne);
    for (const [method, path] of requests) c.write(`${method} ${path} HTTP/1.1\r\n${H}\r\n`);
    check(await c.read(requests.map(([m]) => m)));
    t.notOk(c.closed);
  });

  t.test('Expect: 100-continue: the client gets 100 only once the app accepts, then the body reaches the app', async (t) => {
    let accept: (() => void) | undefined;
    const { app, port } = await proxied(
      t,
      topology,
      () => {},
      {
        checkContinue: (req, res) => {
          accept = () => {
            res.writeContinue();
            let body = '';
            req.setEncoding('utf8');
            req.on('data', (d: string) => (body += d));
            req.on('end', () => res.end(`got ${body}`));
          };
        },
      },
    );
    const c = await client(t, port);
    c.write(`POST /upload HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 11\r\n\r\n`);
    await until(() => accept !== undefined, 'the app to be asked');
    t.equal(header({ headers: pairsOf(app.requests[0]!.rawHeaders) }, 'expect'), '100-continue', 'the app was asked, not the proxy');
    // Nothing may reach the client while the app has not decided.
    await sleep(200);
    t.equal(c.socket.bytesRead, 0, 'no 100 before the app accepts');
    accept!();
    const interim = await c.readInterim();
    t.equal(interim.status, 100, 'then 100 Continue');
    c.write('hello world');
    const [final] = await c.read(['POST']);
    t.equal(final?.status, 200);
    t.equal(final?.body.toString(), 'got hello world');
  });

  t.test('Expect: 100-continue refused by the app: its final answer reaches the client, no 100, no body upstream', async (t) => {
    const { app, port } = await proxied(t, topology, () => {}, {
      checkContinue: (req, res) => {
        req.on('data', () => t.fail('the app got body bytes'));
        res.writeHead(417, { 'Content-Length': '4' }).end('nope');
      },
    });
    const c = await client(t, port);
    c.write(`POST /refused HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 11\r\n\r\n`);
    const responses = await c.read(['POST']);
    t.same(
      responses.map((r) => [r.status, r.body.toString()]),
      [[417, 'nope']],
      'the 417, and no 100 before it',
    );
    t.equal(app.requests.length, 1);
  });

  t.test('the app answers before the request body is complete; when the client then goes, the exchange upstream goes too', async (t) => {
    const { app, port } = await proxied(t, topology, (req, res) => {
      req.resume();
      res.end('early answer');
    });
    const c = await client(t, port);
    c.write(`POST /early HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\nonly ten b`);
    const [r] = await c.read(['POST']);
    t.equal(r?.body.toString(), 'early answer');
    t.equal(app.openConnections(), 1, 'the upstream connection still carries the unfinished request body');
    c.close();
    await until(() => app.openConnections() === 0, "the app's connection to close");
    t.pass('the client went, and so did the upstream exchange waiting for the rest of its body');
  });

  for (const framing of ['Content-Length', 'chunked'] as const) {
    t.test(`the client goes away mid-upload (${framing}): the app sees the request aborted, never complete`, async (t) => {
      const state = new Map<string, string>();
      const { port } = await proxied(t, topology, (req, res) => {
        let received = 0;
        state.set(req.url!, 'open');
        req.on('data', (d: Buffer) => {
          received += d.length;
          state.set(req.url!, `open ${received}`);
        });
        req.on('end', () => {
          state.set(req.url!, `complete ${received}`);
          res.end();
        });
        req.on('error', () => {});
        req.on('close', () => {
          if (state.get(req.url!)!.startsWith('open')) state.set(req.url!, `aborted ${received}`);
        });
      });
      const c = await client(t, port);
      const head = framing === 'chunked' ? 'Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n' : 'Content-Length: 1000\r\n\r\n0123456789';
      c.write(`POST /upload HTTP/1.1\r\n${H}${head}`);
      await until(() => state.get('/upload') === 'open 10', 'the first bytes at the app');
      c.close();
      await until(() => !state.get('/upload')!.startsWith('open'), 'the request to end at the app');
      t.equal(state.get('/upload'), 'aborted 10');
    });
  }

  t.test('trailers: a chunked request with trailers reaches the app with them; a chunked response with trailers reaches the client with them', async (t) => {
    const { port } = await proxied(t, topology, (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        res.writeHead(200, ['Content-Type', 'text/plain', 'Trailer', 'X-Resp-Sum']);
        res.write(JSON.stringify({ body, trailers: req.rawTrailers }));
        res.addTrailers([['X-Resp-Sum', 'sum-123']]);
        res.end();
      });
    });
    const c = await client(t, port);
    // A client's trailer named like a header between sidecars must not reach the app either.
    c.write(`POST /trailers HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTrailer: X-Req-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Req-Sum: abc\r\nMeshlet-Header-Case: X-REQ-SUM\r\n\r\n`);
    const [r] = await c.read(['POST']);
    t.same(JSON.parse(r!.body.toString()), { body: 'hello world', trailers: ['X-Req-Sum', 'abc'] }, 'the app got the body and the trailer, name case kept');
    t.ok(r!.chunked, 'the response stays chunked');
    t.same(r!.trailers, [['X-Resp-Sum', 'sum-123']], 'the client got the response trailer, name case kept');
    t.equal(header(r!, 'trailer'), 'X-Resp-Sum', 'the Trailer header (end to end) is passed on');
  });

  t.test('hop-by-hop headers are removed both ways; Host, header case and order are kept; no Date is added', async (t) => {
    const { app, port } = await proxied(t, topology, (req, res) => {
      req.resume();
      res.sendDate = false;
      res.writeHead(200, [
        'X-ReSpOnSe-CaSe', 'kept',
        'Connection', 'X-App-Hop',
        'X-App-Hop', 'dropped',
        'Keep-Alive', 'timeout=99',
        'Proxy-Connection', 'keep-alive',
        'Upgrade', 'h2c',
        'Content-Length', '2',
      ]);
      res.end('ok');
    });
    const c = await client(t, port);
    c.write(
      'GET /hop HTTP/1.1\r\n' +
        'X-First: 1\r\n' +
        'HoSt: My.Example:8080\r\n' +
        'Connection: keep-alive, X-Client-Hop\r\n' +
        'X-Client-Hop: dropped\r\n' +
        'Keep-Alive: timeout=5\r\n' +
        'Proxy-Connection: keep-alive\r\n' +
        'Upgrade: websocket\r\n' + // without "Connection: upgrade" this is no upgrade request
        'TE: trailers\r\n' +
        'X-MiXeD-CaSe: yes\r\n' +
        'x-lower: yes\r\n' +
        '\r\n',
    );
    const [r] = await c.read(['GET']);
    t.equal(r?.status, 200);
    const seen = app.requests[0]!.rawHeaders;
    const names = pairsOf(seen).map(([n]) => n);
    for (const hop of ['x-client-hop', 'keep-alive', 'proxy-connection', 'upgrade']) {
      t.notOk(names.some((n) => n.toLowerCase() === hop), `the app does not get ${hop}`);
    }
    t.notOk(pairsOf(seen).some(([n, v]) => n.toLowerCase() === 'connection' && /x-client-hop/i.test(v)), "the client's Connection header is not passed on");
    t.ok(seen.includes('HoSt') && seen[seen.indexOf('HoSt') + 1] === 'My.Example:8080', 'Host arrives as the client wrote it, name and value');
    t.equal(pairsOf(seen).filter(([n]) => n.toLowerCase() === 'host').length, 1, 'once');
    t.ok(names.includes('X-MiXeD-CaSe') && names.includes('x-lower') && names.includes('X-First'), 'request header names keep their case');
    t.ok(names.indexOf('X-First') < names.indexOf('X-MiXeD-CaSe') && names.indexOf('X-MiXeD-CaSe') < names.indexOf('x-lower'), 'and their order');
    t.equal(header({ headers: pairsOf(seen) }, 'te'), 'trailers', 'TE: trailers is the one TE that passes');

    const respNames = r!.headers.map(([n]) => n);
    t.ok(respNames.includes('X-ReSpOnSe-CaSe'), 'response header names keep their case');
    t.notOk(respNames.some((n) => n.toLowerCase() === 'x-app-hop'), "the header the app's Connection named is removed");
    t.notOk(respNames.some((n) => n.toLowerCase() === 'proxy-connection' || n.toLowerCase() === 'upgrade'), 'Proxy-Connection and Upgrade are removed');
    t.not(header(r!, 'keep-alive'), 'timeout=99', "the app's Keep-Alive is not passed on");
    t.equal(header(r!, 'date'), undefined, 'no Date: the app sent none and the proxy adds none');
  });

  t.test("the app's Date is passed on unchanged", async (t) => {
    const date = 'Tue, 01 Jan 2030 00:00:00 GMT';
    const { port } = await proxied(t, topology, (req, res) => {
      req.resume();
      res.writeHead(200, { Date: date, 'Content-Length': '0' }).end();
    });
    const c = await client(t, port);
    c.write(`GET / HTTP/1.1\r\n${H}\r\n`);
    const [r] = await c.read(['GET']);
    t.same(
      r!.headers.filter(([n]) => n.toLowerCase() === 'date'),
      [['Date', date]],
    );
  });

  t.test('a response with neither Content-Length nor chunked (read to close, HTTP/1.0 style) reaches the client whole', async (t) => {
    const { port } = await proxied(t, topology, (req, res) => {
      req.resume();
      // HTTP/1.0 framing: the body ends when the app closes the connection.
      res.socket!.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nthe whole body');
      res.socket!.end();
    });
    const c = await client(t, port);
    c.write(`GET / HTTP/1.1\r\n${H}\r\n`);
    const [r] = await c.read(['GET']);
    t.equal(r?.status, 200);
    t.equal(r?.body.toString(), 'the whole body');
    t.ok(r?.chunked, 'framed for the keep-alive client (chunked), not by a close');
    t.notOk(c.closed, 'and the client connection stays open');
  });
}

function pairsOf(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}
