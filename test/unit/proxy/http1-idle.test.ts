import t from 'tap';
import { h1App, RawClient } from '../../helpers/http.ts';
import { sidecar, until } from './mtls-harness.ts';

// tcp.idleTimeout on an HTTP/1.1 client connection: the proxy closes a kept-alive
// connection that carries no request for that long, and never one whose request is under
// way, however long its upstream takes.

const IDLE = 1000;
const app = await h1App((req, res) => {
  if (req.url === '/slow') setTimeout(() => res.end('slow answer'), IDLE * 2.5);
  else res.end(`app saw ${req.url}`);
});
t.teardown(() => app.close());

for (const direction of ['outbound', 'inbound'] as const) {
  t.test(direction, async (t) => {
    const proxy = await sidecar(direction, () => app.port, { env: { MESHLET_TCP_IDLE_TIMEOUT: `${IDLE}ms` } });
    t.teardown(() => proxy.close());
    const H = 'Host: app.example\r\n';

    t.test('a connection with no request under way is closed after the idle timeout', async (t) => {
      const client = new RawClient(proxy.port);
      t.teardown(() => client.close());
      client.write(`GET /one HTTP/1.1\r\n${H}\r\n`);
      const [first] = await client.read(['GET']);
      t.equal(first?.body.toString(), 'app saw /one');
      t.notOk(client.closed, 'kept alive after the response');
      // until() fails the test if the proxy never closes it.
      await until(() => client.closed, 'the proxy to close the idle connection');
      t.ok(client.closed, 'the proxy closed the idle connection');
    });

    t.test('a request whose response takes longer than the idle timeout is answered on its connection', async (t) => {
      const client = new RawClient(proxy.port);
      t.teardown(() => client.close());
      client.write(`GET /slow HTTP/1.1\r\n${H}\r\n`);
      const [slow] = await client.read(['GET']);
      t.equal(slow?.status, 200);
      t.equal(slow?.body.toString(), 'slow answer');
      t.notOk(client.closed, 'still open right after the response');
      client.write(`GET /next HTTP/1.1\r\n${H}\r\n`);
      const [next] = await client.read(['GET']);
      t.equal(next?.body.toString(), 'app saw /next', 'and it carries the next request');
    });
  });
}
