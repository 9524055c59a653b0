import t from 'tap';
import { origDst } from '../../../src/net/addresses.ts';
import { authorize, type AuthorizationRule } from '../../../src/tls/authorization.ts';
import { StaticPeers } from '../../../src/tls/mesh-peers.ts';

const CART = 'spiffe://cluster.local/ns/shop/sa/cart';
const ADMIN = 'spiffe://cluster.local/ns/ops/sa/admin';

t.test('the first matching rule decides; no match allows', async (t) => {
  const rules: AuthorizationRule[] = [
    { action: 'deny', namespaces: ['ops'], ports: [8080] },
    { action: 'allow', principals: ['spiffe://cluster.local/ns/shop/*'] },
    { action: 'deny', principals: ['*'] },
  ];
  t.same(authorize(rules, { principal: ADMIN, port: 8080 }), { allowed: false, rule: 0 });
  t.same(authorize(rules, { principal: ADMIN, port: 9090 }), { allowed: false, rule: 2 }, 'other port: falls to the catch-all deny');
  t.same(authorize(rules, { principal: CART, port: 8080 }), { allowed: true, rule: 1 });
  t.same(authorize(rules, { port: 8080 }), { allowed: true }, 'plaintext peers have no principal: no rule with principals or namespaces matches');
  t.same(authorize([], { principal: CART, port: 1 }), { allowed: true });
});

t.test('principal patterns: exact, prefix with *, any authenticated with *', async (t) => {
  const only = (p: string) => [{ action: 'allow' as const, principals: [p] }, { action: 'deny' as const }];
  t.ok(authorize(only(CART), { principal: CART, port: 1 }).allowed);
  t.notOk(authorize(only(CART), { principal: `${CART}2`, port: 1 }).allowed, 'exact means exact');
  t.ok(authorize(only('spiffe://cluster.local/ns/shop/*'), { principal: CART, port: 1 }).allowed);
  t.ok(authorize(only('*'), { principal: ADMIN, port: 1 }).allowed);
  t.notOk(authorize(only('*'), { port: 1 }).allowed, '* needs an authenticated peer');
});

t.test('mesh peers: CIDR and port matching, expected identity', async (t) => {
  const peers = new StaticPeers(
    [
      { cidrs: ['10.44.0.0/24'], ports: [8080], spiffeId: CART },
      { cidrs: ['10.44.0.0/16', 'fd00:2c::/64'] },
      { cidrs: ['192.0.2.7'], trustDomain: 'other.example' },
    ],
    'cluster.local',
  );
  t.same(peers.lookup(origDst('10.44.0.3', 8080)), { trustDomain: 'cluster.local', spiffeId: CART });
  t.same(peers.lookup(origDst('10.44.0.3', 9090)), { trustDomain: 'cluster.local' }, 'another port: the next entry');
  t.same(peers.lookup(origDst('fd00:2c::3', 443)), { trustDomain: 'cluster.local' });
  t.same(peers.lookup(origDst('192.0.2.7', 1)), { trustDomain: 'other.example' }, 'a bare address is a /32');
  t.equal(peers.lookup(origDst('192.0.2.8', 1)), undefined);
  t.equal(peers.lookup(origDst('10.45.0.1', 8080)), undefined);
});
