import t from 'tap';
import { REDACTED, redact } from '../../../src/admin/redact.ts';
import { loadConfig } from '../../../src/config/load.ts';

t.test('secret-named text fields are replaced at any depth; lists and maps are looked into; paths and everything else are kept', async (t) => {
  const input = {
    identity: { dir: '/var/run/secrets/meshlet' },
    tracing: { headers: 'authorization=Bearer abc', endpoint: 'http://collector:4318' },
    exporter: { headers: { authorization: 'Bearer abc', 'x-tenant': 'shop' } },
    inbound: { authorization: [{ action: 'allow', principals: ['spiffe://cluster.local/ns/shop/sa/cart'] }] },
    list: [{ password: 'p', user: 'u' }, { apiKey: 'k' }],
    privateKey: '-----BEGIN PRIVATE KEY-----',
    key: 'x',
    keys: 3,
    token: null,
  };
  const out = redact(input);
  t.same(out, {
    identity: { dir: '/var/run/secrets/meshlet' },
    tracing: { headers: REDACTED, endpoint: 'http://collector:4318' },
    exporter: { headers: { authorization: REDACTED, 'x-tenant': 'shop' } },
    inbound: { authorization: [{ action: 'allow', principals: ['spiffe://cluster.local/ns/shop/sa/cart'] }] },
    list: [{ password: REDACTED, user: 'u' }, { apiKey: REDACTED }],
    privateKey: REDACTED,
    key: REDACTED,
    keys: 3,
    token: null,
  });
  t.equal(input.privateKey, '-----BEGIN PRIVATE KEY-----', 'the input is not changed');
});

t.test("today's configuration has no secret field: a dump of it is the configuration itself", async (t) => {
  const config = loadConfig({ env: { MESHLET_IDENTITY_DIR: '/id' } });
  t.same(redact(config), JSON.parse(JSON.stringify(config)));
});
