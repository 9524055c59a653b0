import t from 'tap';
import { parseInitOptions } from '../../../src/iptables/options.ts';
import { planInstall } from '../../../src/iptables/plan.ts';
import { renderRestore, renderRuleLine } from '../../../src/iptables/render.ts';
import { buildRuleSet, type Family } from '../../../src/iptables/rules.ts';

const restore = (argv: string[], family: Family) => renderRestore(planInstall(buildRuleSet(parseInitOptions(argv, {}), family), []));
const lines = (argv: string[], family: Family) => buildRuleSet(parseInitOptions(argv, {}), family).rules.map(renderRuleLine);

t.test('default IPv4 input, exactly', async (t) => {
  t.equal(
    restore([], 4),
    `*nat
:MESHLET_INBOUND - [0:0]
:MESHLET_OUTPUT - [0:0]
-A MESHLET_INBOUND -p tcp -m tcp --dport 15020 -m comment --comment "meshlet: proxy port 15020 is not intercepted" -j RETURN
-A MESHLET_INBOUND -p tcp -m tcp --dport 15000 -m comment --comment "meshlet: proxy port 15000 is not intercepted" -j RETURN
-A MESHLET_INBOUND -p tcp -m comment --comment "meshlet: inbound TCP to the proxy on 15006" -j REDIRECT --to-ports 15006
-A MESHLET_OUTPUT -p tcp -m owner --uid-owner 1337 -m comment --comment "meshlet: traffic of the proxy uid 1337 is not redirected" -j RETURN
-A MESHLET_OUTPUT -p tcp -m owner --gid-owner 1337 -m comment --comment "meshlet: traffic of the proxy gid 1337 is not redirected" -j RETURN
-A MESHLET_OUTPUT -d 127.0.0.0/8 -p tcp -m comment --comment "meshlet: loopback traffic is not redirected" -j RETURN
-A MESHLET_OUTPUT -p tcp -m comment --comment "meshlet: outbound TCP to the proxy on 15001" -j REDIRECT --to-ports 15001
-A PREROUTING -p tcp -m comment --comment "meshlet: inbound TCP to the meshlet proxy" -j MESHLET_INBOUND
-A OUTPUT -p tcp -m comment --comment "meshlet: outbound TCP to the meshlet proxy" -j MESHLET_OUTPUT
COMMIT
`,
  );
});

t.test('IPv6 differs only in the loopback rule', async (t) => {
  const v4 = restore([], 4).split('\n');
  const v6 = restore([], 6).split('\n');
  t.equal(v6.length, v4.length);
  const differing = v6.filter((line, i) => line !== v4[i]);
  t.same(differing, ['-A MESHLET_OUTPUT -d ::1/128 -p tcp -m comment --comment "meshlet: loopback traffic is not redirected" -j RETURN']);
});

t.test('every rule has a meshlet comment and chains are MESHLET_*', async (t) => {
  const text = restore(['--exclude-outbound-ports', '1-2', '--exclude-outbound-cidrs', '10.0.0.0/8', '--inbound-ports', '80'], 4);
  for (const line of text.split('\n').filter((l) => l.startsWith('-A'))) {
    t.match(line, / -m comment --comment "meshlet: [^"]+" -j /, line);
  }
  for (const line of text.split('\n').filter((l) => l.startsWith(':'))) t.match(line, /^:MESHLET_\w+ - \[0:0\]$/);
});

t.test('port exclusions, ranges and an inbound port list', async (t) => {
  const argv = ['--inbound-ports', '80,8000-8100', '--exclude-inbound-ports', '22,9000-9001', '--exclude-outbound-ports', '3306,5432-5440', '--inbound-port', '16006', '--outbound-port', '16001'];
  t.same(lines(argv, 4), [
    '-A MESHLET_INBOUND -p tcp -m tcp --dport 15020 -m comment --comment "meshlet: proxy port 15020 is not intercepted" -j RETURN',
    '-A MESHLET_INBOUND -p tcp -m tcp --dport 15000 -m comment --comment "meshlet: proxy port 15000 is not intercepted" -j RETURN',
    '-A MESHLET_INBOUND -p tcp -m tcp --dport 22 -m comment --comment "meshlet: excluded inbound port 22" -j RETURN',
    '-A MESHLET_INBOUND -p tcp -m tcp --dport 9000:9001 -m comment --comment "meshlet: excluded inbound port 9000-9001" -j RETURN',
    '-A MESHLET_INBOUND -p tcp -m tcp --dport 80 -m comment --comment "meshlet: inbound port 80 to the proxy on 16006" -j REDIRECT --to-ports 16006',
    '-A MESHLET_INBOUND -p tcp -m tcp --dport 8000:8100 -m comment --comment "meshlet: inbound port 8000-8100 to the proxy on 16006" -j REDIRECT --to-ports 16006',
    '-A MESHLET_OUTPUT -p tcp -m owner --uid-owner 1337 -m comment --comment "meshlet: traffic of the proxy uid 1337 is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -p tcp -m owner --gid-owner 1337 -m comment --comment "meshlet: traffic of the proxy gid 1337 is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -d 127.0.0.0/8 -p tcp -m comment --comment "meshlet: loopback traffic is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -p tcp -m tcp --dport 3306 -m comment --comment "meshlet: excluded outbound port 3306" -j RETURN',
    '-A MESHLET_OUTPUT -p tcp -m tcp --dport 5432:5440 -m comment --comment "meshlet: excluded outbound port 5432-5440" -j RETURN',
    '-A MESHLET_OUTPUT -p tcp -m comment --comment "meshlet: outbound TCP to the proxy on 16001" -j REDIRECT --to-ports 16001',
  ]);
});

t.test('an empty inbound port list redirects nothing inbound but keeps the exclusions', async (t) => {
  const inbound = lines(['--inbound-ports='], 4).filter((l) => l.startsWith('-A MESHLET_INBOUND'));
  t.equal(inbound.length, 2);
  t.notOk(inbound.some((l) => l.includes('REDIRECT')));
});

t.test('CIDRs go only to their own family', async (t) => {
  const argv = ['--exclude-outbound-cidrs', '10.96.0.0/12,fd00:96::/108', '--include-outbound-cidrs', '10.0.0.0/8,192.168.0.0/16,FD00::/8', '--proxy-uid', '2000', '--proxy-gid', '3000'];
  t.same(lines(argv, 4).filter((l) => l.startsWith('-A MESHLET_OUTPUT')), [
    '-A MESHLET_OUTPUT -p tcp -m owner --uid-owner 2000 -m comment --comment "meshlet: traffic of the proxy uid 2000 is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -p tcp -m owner --gid-owner 3000 -m comment --comment "meshlet: traffic of the proxy gid 3000 is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -d 127.0.0.0/8 -p tcp -m comment --comment "meshlet: loopback traffic is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -d 10.96.0.0/12 -p tcp -m comment --comment "meshlet: excluded outbound destination 10.96.0.0/12" -j RETURN',
    '-A MESHLET_OUTPUT -d 10.0.0.0/8 -p tcp -m comment --comment "meshlet: outbound TCP to 10.0.0.0/8 to the proxy on 15001" -j REDIRECT --to-ports 15001',
    '-A MESHLET_OUTPUT -d 192.168.0.0/16 -p tcp -m comment --comment "meshlet: outbound TCP to 192.168.0.0/16 to the proxy on 15001" -j REDIRECT --to-ports 15001',
  ]);
  t.same(lines(argv, 6).filter((l) => l.startsWith('-A MESHLET_OUTPUT')), [
    '-A MESHLET_OUTPUT -p tcp -m owner --uid-owner 2000 -m comment --comment "meshlet: traffic of the proxy uid 2000 is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -p tcp -m owner --gid-owner 3000 -m comment --comment "meshlet: traffic of the proxy gid 3000 is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -d ::1/128 -p tcp -m comment --comment "meshlet: loopback traffic is not redirected" -j RETURN',
    '-A MESHLET_OUTPUT -d fd00:96::/108 -p tcp -m comment --comment "meshlet: excluded outbound destination fd00:96::/108" -j RETURN',
    '-A MESHLET_OUTPUT -d fd00::/8 -p tcp -m comment --comment "meshlet: outbound TCP to fd00::/8 to the proxy on 15001" -j REDIRECT --to-ports 15001',
  ]);
});

t.test('include CIDRs of the other family only: nothing of this family is redirected', async (t) => {
  const v6 = lines(['--include-outbound-cidrs', '10.0.0.0/8'], 6);
  t.notOk(v6.some((l) => l.includes('REDIRECT --to-ports 15001')), 'no outbound REDIRECT in IPv6');
  t.ok(v6.some((l) => l.includes('REDIRECT --to-ports 15006')), 'inbound is unaffected');
});

t.test('the proxy exemptions come before any REDIRECT (no loop)', async (t) => {
  const out = lines(['--include-outbound-cidrs', '10.0.0.0/8'], 4).filter((l) => l.startsWith('-A MESHLET_OUTPUT'));
  const firstRedirect = out.findIndex((l) => l.includes('REDIRECT'));
  t.ok(firstRedirect > out.findIndex((l) => l.includes('--uid-owner')));
  t.ok(firstRedirect > out.findIndex((l) => l.includes('--gid-owner')));
  t.ok(firstRedirect > out.findIndex((l) => l.includes('-d 127.0.0.0/8')));
});
