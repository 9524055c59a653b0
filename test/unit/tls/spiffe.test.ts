import t from 'tap';
import { isMeshletError } from '../../../src/errors.ts';
import { namespaceOf, parseSpiffeId, parseTrustDomain, parseWorkloadId } from '../../../src/tls/spiffe.ts';

// SPIFFE IDs per the SPIFFE-ID standard, section 2: each invalid ID is refused with
// the rule it breaks, each valid one parses into its parts.

t.test('valid IDs parse into trust domain, path and (for /ns/NS/sa/SA) namespace and service account', async (t) => {
  const cases: [string, { trustDomain: string; path: string; namespace?: string; serviceAccount?: string }][] = [
    ['spiffe://cluster.local/ns/default/sa/web', { trustDomain: 'cluster.local', path: '/ns/default/sa/web', namespace: 'default', serviceAccount: 'web' }],
    ['spiffe://cluster.local', { trustDomain: 'cluster.local', path: '' }],
    ['spiffe://example.org/payments/mysql', { trustDomain: 'example.org', path: '/payments/mysql' }],
    ['spiffe://td_1-a.b/A.z-_9/x', { trustDomain: 'td_1-a.b', path: '/A.z-_9/x' }],
    ['spiffe://10.0.0.1/svc', { trustDomain: '10.0.0.1', path: '/svc' }],
    ['spiffe://td/...', { trustDomain: 'td', path: '/...' }], // three dots is a name, not a relative segment
    ['spiffe://td/ns/a/sa/b/extra', { trustDomain: 'td', path: '/ns/a/sa/b/extra' }], // five segments: no namespace
    ['spiffe://td/sa/b/ns/a', { trustDomain: 'td', path: '/sa/b/ns/a' }],
    ['spiffe://td/ns/a/sb/b', { trustDomain: 'td', path: '/ns/a/sb/b' }],
    [`spiffe://td/${'a'.repeat(2048 - 'spiffe://td/'.length)}`, { trustDomain: 'td', path: `/${'a'.repeat(2048 - 'spiffe://td/'.length)}` }],
  ];
  for (const [text, expected] of cases) {
    const id = parseSpiffeId(text);
    t.equal(id.id, text, `${text.slice(0, 60)}: id kept as given`);
    t.equal(id.trustDomain, expected.trustDomain, `${text.slice(0, 60)}: trust domain`);
    t.equal(id.path, expected.path, `${text.slice(0, 60)}: path`);
    t.equal(id.namespace, expected.namespace, `${text.slice(0, 60)}: namespace`);
    t.equal(id.serviceAccount, expected.serviceAccount, `${text.slice(0, 60)}: service account`);
  }
});

t.test('invalid IDs are refused with the reason', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /it is empty/],
    ['https://cluster.local/ns/a/sa/b', /scheme must be 'spiffe', not 'https'/],
    ['SPIFFE://cluster.local/ns/a', /scheme must be lowercase 'spiffe'/],
    ['spiffe:cluster.local/ns/a', /must start with 'spiffe:\/\/'/],
    ['cluster.local/ns/a', /must start with 'spiffe:\/\/'/],
    ['spiffe://', /trust domain is missing/],
    ['spiffe:///ns/a', /trust domain is missing/],
    ['spiffe://Cluster.local/ns/a', /trust domain 'Cluster\.local' must be lowercase/],
    ['spiffe://cluster.local:8443/ns/a', /a port is not allowed/],
    ['spiffe://user@cluster.local/ns/a', /userinfo \(user@\) is not allowed/],
    ['spiffe://clu$ter/ns/a', /trust domain 'clu\$ter' has '\$'; only a-z, 0-9/],
    ['spiffe://[::1]/ns/a', /an IPv6 address cannot be a trust domain/],
    ['spiffe://cluster.local/', /path must not end with '\/'/],
    ['spiffe://cluster.local/ns/a/', /path must not end with '\/'/],
    ['spiffe://cluster.local//ns', /empty segment/],
    ['spiffe://cluster.local/ns//a', /empty segment/],
    ['spiffe://cluster.local/ns/./a', /segment '\.' is not allowed/],
    ['spiffe://cluster.local/ns/../a', /segment '\.\.' is not allowed/],
    ['spiffe://cluster.local/ns/a b', /segment 'a b' has ' '/],
    ['spiffe://cluster.local/ns/ä', /segment 'ä' has 'ä'/],
    ['spiffe://cluster.local/ns/a:b', /segment 'a:b' has ':'/],
    ['spiffe://cluster.local/ns/a%20b', /percent-encoded/],
    ['spiffe://cluster.local/ns/a?x=1', /a query/],
    ['spiffe://cluster.local/ns/a#frag', /a fragment/],
    [`spiffe://td/${'a'.repeat(2049 - 'spiffe://td/'.length)}`, /it is 2049 bytes long; the limit is 2048/],
    [`spiffe://${'a'.repeat(256)}/x`, /trust domain is longer than 255 bytes/],
  ];
  for (const [text, reason] of cases) {
    try {
      parseSpiffeId(text);
      t.fail(`${JSON.stringify(text.slice(0, 60))} was accepted`);
    } catch (err) {
      t.ok(isMeshletError(err, 'MESHLET_ERR_SPIFFE_ID'), `${JSON.stringify(text.slice(0, 60))}: a SPIFFE ID error`);
      t.match((err as Error).message, reason, `${JSON.stringify(text.slice(0, 60))}: reason`);
      t.notMatch((err as Error).message, /\n/, 'one line');
      t.ok((err as Error).message.length < 300, 'a long ID is shortened in the message');
    }
  }
});

t.test('parseTrustDomain takes a bare trust domain name', async (t) => {
  t.equal(parseTrustDomain('cluster.local'), 'cluster.local');
  t.equal(parseTrustDomain('my_td-1.example'), 'my_td-1.example');
  t.throws(() => parseTrustDomain(''), /invalid trust domain '': the trust domain is missing/);
  t.throws(() => parseTrustDomain('Cluster.Local'), /must be lowercase/);
  t.throws(() => parseTrustDomain('spiffe://cluster.local'), /without a scheme/);
  t.throws(() => parseTrustDomain('cluster.local:443'), /a port is not allowed/);
  t.throws(() => parseTrustDomain('td/x'), /has '\/'/);
});

t.test('namespaceOf reads /ns/NS/sa/SA and nothing else', async (t) => {
  t.equal(namespaceOf('spiffe://cluster.local/ns/payments/sa/api'), 'payments');
  t.equal(namespaceOf(parseSpiffeId('spiffe://cluster.local/ns/kube-system/sa/default')), 'kube-system');
  t.equal(namespaceOf('spiffe://cluster.local/payments/api'), undefined, 'another path convention');
  t.equal(namespaceOf('spiffe://cluster.local/ns/payments'), undefined, 'no service account');
  t.equal(namespaceOf('spiffe://cluster.local/ns/payments/sa/api/x'), undefined, 'extra segment');
  t.equal(namespaceOf('spiffe://cluster.local'), undefined, 'trust domain ID');
  t.equal(namespaceOf('spiffe://cluster.local/ns/../sa/api'), undefined, 'not a valid SPIFFE ID');
  t.equal(namespaceOf('https://cluster.local/ns/a/sa/b'), undefined, 'not a SPIFFE ID at all');
});

t.test('parseWorkloadId takes only spiffe://TD/ns/NS/sa/SA, saying which form is needed', async (t) => {
  const id = parseWorkloadId('spiffe://cluster.local/ns/shop/sa/cart');
  t.equal(id.namespace, 'shop');
  t.equal(id.serviceAccount, 'cart');
  for (const text of ['spiffe://cluster.local/ns/shop', 'spiffe://cluster.local/payments/api', 'spiffe://cluster.local/ns/a/sa/b/c']) {
    t.throws(() => parseWorkloadId(text), { code: 'MESHLET_ERR_SPIFFE_ID', message: /is not a workload ID \(its path is \/.*\): use spiffe:\/\/cluster\.local\/ns\/NAMESPACE\/sa\/SERVICE_ACCOUNT/ }, text);
  }
  t.throws(() => parseWorkloadId('spiffe://cluster.local'), { code: 'MESHLET_ERR_SPIFFE_ID', message: /trust domain's own ID, not a workload's/ });
  t.throws(() => parseWorkloadId('spiffe://cluster.local/ns/../sa/x'), { code: 'MESHLET_ERR_SPIFFE_ID', message: /segment '\.\.' is not allowed/ }, 'an invalid ID says why first');
});
