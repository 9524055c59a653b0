import t from 'tap';
import { parseInitOptions } from '../../../src/iptables/options.ts';
import { wouldRedirect } from '../../../src/iptables/validate.ts';

// Validation picks its test destination with wouldRedirect, so it must agree with the
// rule model; the connections themselves are tested end to end (test/e2e/init.test.ts).

t.test('wouldRedirect mirrors the outbound rules', async (t) => {
  const all = parseInitOptions([], {});
  t.ok(wouldRedirect(all, '192.0.2.2', 80));
  t.ok(wouldRedirect(all, '2001:db8::2', 80));
  t.notOk(wouldRedirect(all, '127.0.0.1', 80), 'loopback');
  t.notOk(wouldRedirect(all, '127.9.9.9', 80), 'all of 127/8');
  t.notOk(wouldRedirect(all, '::1', 80), 'IPv6 loopback');

  const excl = parseInitOptions(['--exclude-outbound-ports', '80,9000-9100', '--exclude-outbound-cidrs', '192.0.2.0/24,2001:db8::/32'], {});
  t.notOk(wouldRedirect(excl, '10.0.0.1', 9050), 'excluded port range');
  t.ok(wouldRedirect(excl, '10.0.0.1', 9101));
  t.notOk(wouldRedirect(excl, '192.0.2.2', 443), 'excluded IPv4 CIDR');
  t.notOk(wouldRedirect(excl, '2001:db8::2', 443), 'excluded IPv6 CIDR');

  const incl = parseInitOptions(['--include-outbound-cidrs', '10.44.0.0/16,fd00:2c::/64'], {});
  t.ok(wouldRedirect(incl, '10.44.0.2', 1234));
  t.ok(wouldRedirect(incl, 'fd00:2c::2', 1234));
  t.notOk(wouldRedirect(incl, '192.0.2.2', 80), 'outside the include list');
  t.notOk(wouldRedirect(incl, '2001:db8::2', 80));
  t.notOk(wouldRedirect(parseInitOptions(['--include-outbound-cidrs='], {}), '10.44.0.2', 80), 'an empty include list redirects nothing');
});
