import http from 'node:http';
import t from 'tap';
import { Scrape } from '../../../src/testbed/metrics.ts';
import { h1App } from '../../helpers/http.ts';
import { through } from '../../helpers/http-sidecars.ts';

// metrics.enabled: the request and connection metrics are recorded by default, and not at
// all when it is false, through a real sidecar pair on loopback.

const get = (port: number) =>
  new Promise<number>((resolve, reject) => {
    http.get(`http://127.0.0.1:${port}/`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });

for (const enabled of [true, false]) {
  t.test(`metrics.enabled ${enabled}`, async (t) => {
    const app = await h1App((_, res) => res.end('ok'));
    t.teardown(() => app.close());
    const { port, outbound, inbound } = await through(t, 'mesh', () => app.port, enabled ? {} : { MESHLET_METRICS_ENABLED: 'false' });
    for (let i = 0; i < 3; i++) t.equal(await get(port), 200);
    for (const [side, sidecar] of [['outbound', outbound], ['inbound', inbound!]] as const) {
      const scrape = new Scrape(await sidecar.registry.metrics());
      t.equal(scrape.value('meshlet_requests_total'), enabled ? 3 : 0, `${side}: requests ${enabled ? '' : 'not '}counted`);
      t.equal(scrape.value('meshlet_tcp_connections_opened_total') > 0, enabled, `${side}: connections ${enabled ? '' : 'not '}counted`);
      t.ok(scrape.value('meshlet_proxy_protocol_detections_total') > 0 || side === 'inbound', `${side}: the proxy's own metrics are still recorded`);
    }
  });
}
