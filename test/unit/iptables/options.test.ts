import t, { type Test } from 'tap';
import { isMeshletError } from '../../../src/errors.ts';
import { envName, parseInitOptions } from '../../../src/iptables/options.ts';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseInitOptions(argv, env);

/** The usage error's message, failing the test if there was none. */
function usageError(t: Test, argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parse(argv, env);
  } catch (err) {
    t.ok(isMeshletError(err, 'MESHLET_ERR_USAGE'), `usage error for ${JSON.stringify(argv)} ${JSON.stringify(env)}`);
    return (err as Error).message;
  }
  t.fail(`expected a usage error for ${JSON.stringify(argv)} ${JSON.stringify(env)}`);
  return '';
}

t.test('defaults', async (t) => {
  const o = parse([]);
  t.equal(o.proxyUid, 1337);
  t.equal(o.proxyGid, 1337);
  t.equal(o.outboundPort, 15001);
  t.equal(o.inboundPort, 15006);
  t.equal(o.inboundPorts, 'all');
  t.same(o.excludeInboundPorts, []);
  t.same(o.excludeOutboundPorts, []);
  t.equal(o.includeOutboundCidrs, 'all');
  t.same(o.excludeOutboundCidrs, []);
  t.equal(o.ipv6, 'auto');
  t.equal(o.backend, 'auto');
  t.notOk(o.dryRun);
  t.notOk(o.cleanup);
  t.notOk(o.validate);
  t.notOk(o.help);
});

t.test('flags', async (t) => {
  const o = parse([
    '--proxy-uid', '2000', '--proxy-gid=3000', '--outbound-port', '16001', '--inbound-port', '16006',
    '--inbound-ports', '80,8000-8100', '--exclude-inbound-ports', '22', '--exclude-outbound-ports', '3306, 5432-5433',
    '--include-outbound-cidrs', '10.0.0.0/8,FD00::/8', '--exclude-outbound-cidrs', '10.96.0.1,2001:db8::1',
    '--ipv6', 'off', '--backend', 'legacy', '--dry-run', '--validate',
  ]);
  t.equal(o.proxyUid, 2000);
  t.equal(o.proxyGid, 3000);
  t.equal(o.outboundPort, 16001);
  t.equal(o.inboundPort, 16006);
  t.same(o.inboundPorts, [{ from: 80, to: 80 }, { from: 8000, to: 8100 }]);
  t.same(o.excludeInboundPorts, [{ from: 22, to: 22 }]);
  t.same(o.excludeOutboundPorts, [{ from: 3306, to: 3306 }, { from: 5432, to: 5433 }]);
  t.same(o.includeOutboundCidrs, [{ family: 4, address: '10.0.0.0', prefix: 8 }, { family: 6, address: 'fd00::', prefix: 8 }]);
  t.same(o.excludeOutboundCidrs, [{ family: 4, address: '10.96.0.1', prefix: 32 }, { family: 6, address: '2001:db8::1', prefix: 128 }], 'bare addresses are host CIDRs');
  t.equal(o.ipv6, 'off');
  t.equal(o.backend, 'legacy');
  t.ok(o.dryRun);
  t.ok(o.validate);
  t.ok(parse(['-h']).help);
});

t.test('every flag has an env variable, and flags win', async (t) => {
  t.equal(envName('exclude-outbound-cidrs'), 'MESHLET_EXCLUDE_OUTBOUND_CIDRS');
  const env = {
    MESHLET_PROXY_UID: '4000',
    MESHLET_OUTBOUND_PORT: '17001',
    MESHLET_INBOUND_PORT: '17006',
    MESHLET_INBOUND_PORTS: '9090',
    MESHLET_EXCLUDE_INBOUND_PORTS: '23',
    MESHLET_EXCLUDE_OUTBOUND_PORTS: '25',
    MESHLET_INCLUDE_OUTBOUND_CIDRS: '192.168.0.0/16',
    MESHLET_EXCLUDE_OUTBOUND_CIDRS: '192.168.1.0/24',
    MESHLET_IPV6: 'ON',
    MESHLET_BACKEND: 'nft',
    MESHLET_DRY_RUN: 'true',
    MESHLET_CLEANUP: '1',
  };
  const o = parse([], env);
  t.equal(o.proxyUid, 4000);
  t.equal(o.proxyGid, 4000, 'gid defaults to the uid, from env too');
  t.equal(o.outboundPort, 17001);
  t.equal(o.inboundPort, 17006);
  t.same(o.inboundPorts, [{ from: 9090, to: 9090 }]);
  t.same(o.excludeInboundPorts, [{ from: 23, to: 23 }]);
  t.same(o.excludeOutboundPorts, [{ from: 25, to: 25 }]);
  t.same(o.includeOutboundCidrs, [{ family: 4, address: '192.168.0.0', prefix: 16 }]);
  t.same(o.excludeOutboundCidrs, [{ family: 4, address: '192.168.1.0', prefix: 24 }]);
  t.equal(o.ipv6, 'on');
  t.equal(o.backend, 'nft');
  t.ok(o.dryRun);
  t.ok(o.cleanup);
  t.equal(parse([], { MESHLET_PROXY_GID: '5', MESHLET_VALIDATE: 'yes' }).proxyGid, 5);
  t.ok(parse([], { MESHLET_VALIDATE: 'yes' }).validate);

  const flagsWin = parse(['--proxy-uid', '1', '--exclude-outbound-ports', '26', '--backend', 'legacy', '--no-dry-run'], env);
  t.equal(flagsWin.proxyUid, 1);
  t.same(flagsWin.excludeOutboundPorts, [{ from: 26, to: 26 }]);
  t.equal(flagsWin.backend, 'legacy');
  t.notOk(flagsWin.dryRun, '--no-dry-run beats MESHLET_DRY_RUN=true');
  t.notOk(parse([], { MESHLET_DRY_RUN: 'false' }).dryRun);
});

t.test('empty values', async (t) => {
  const o = parse([], { MESHLET_PROXY_UID: '', MESHLET_IPV6: ' ', MESHLET_DRY_RUN: '', MESHLET_EXCLUDE_OUTBOUND_PORTS: '', MESHLET_INBOUND_PORTS: '' });
  t.equal(o.proxyUid, 1337, 'an empty scalar variable is unset');
  t.equal(o.ipv6, 'auto');
  t.notOk(o.dryRun);
  t.same(o.excludeOutboundPorts, []);
  t.same(o.inboundPorts, [], 'an empty inbound port list redirects no inbound port');
  t.same(parse(['--include-outbound-cidrs=']).includeOutboundCidrs, [], 'an empty include list redirects nothing');
  t.equal(parse(['--include-outbound-cidrs', '*']).includeOutboundCidrs, 'all');
  t.equal(parse(['--inbound-ports', ' * ']).inboundPorts, 'all');
});

t.test('ranges and duplicates', async (t) => {
  t.same(parse(['--exclude-outbound-ports', '1,65535,10-10,80,80']).excludeOutboundPorts, [
    { from: 1, to: 1 },
    { from: 65535, to: 65535 },
    { from: 10, to: 10 },
    { from: 80, to: 80 },
  ]);
  t.same(parse(['--exclude-outbound-cidrs', '10.0.0.0/8,10.0.0.0/8, fd00:0:0::/8']).excludeOutboundCidrs, [
    { family: 4, address: '10.0.0.0', prefix: 8 },
    { family: 6, address: 'fd00::', prefix: 8 },
  ]);
  t.same(parse(['--exclude-outbound-cidrs', '0.0.0.0/0,::/0']).excludeOutboundCidrs, [
    { family: 4, address: '0.0.0.0', prefix: 0 },
    { family: 6, address: '::', prefix: 0 },
  ]);
});

t.test('every malformed input names the flag (or variable) and the value', async (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--bogus'], {}, /unknown flag '--bogus'/],
    [['extra'], {}, /unexpected argument 'extra'/],
    [['--proxy-uid'], {}, /--proxy-uid needs a value/],
    [['--proxy-uid', '--dry-run'], {}, /--proxy-uid needs a value/],
    [['--dry-run=yes'], {}, /--dry-run/],
    [['--proxy-uid', 'abc'], {}, /--proxy-uid: 'abc' is not an integer/],
    [['--proxy-uid', '-1'], {}, /--proxy-uid/],
    [['--proxy-uid', '4294967295'], {}, /--proxy-uid: '4294967295'/],
    [['--proxy-gid', '1e3'], {}, /--proxy-gid: '1e3'/],
    [['--proxy-uid='], {}, /--proxy-uid: ''/],
    [['--outbound-port', '0'], {}, /^--outbound-port: 0 is out of range 1–65535$/],
    [['--inbound-port', '65536'], {}, /^--inbound-port: 65536 is out of range 1–65535$/],
    [['--inbound-port', 'http'], {}, /^--inbound-port: 'http' is not a port number \(1–65535\)$/],
    [['--inbound-port', '15001'], {}, /must differ/],
    [['--inbound-ports', '80,x'], {}, /^--inbound-ports: '80,x': 'x' is not a port or a range \(1–65535\); expected ports or ranges like 80,8000-8100$/],
    [['--inbound-ports', '*,80'], {}, /--inbound-ports: '\*,80' mixes '\*'/],
    [['--exclude-inbound-ports', '80,,90'], {}, /--exclude-inbound-ports: '80,,90': an entry is empty/],
    [['--exclude-outbound-ports', '9000-8000'], {}, /--exclude-outbound-ports: '9000-8000' is a range from high to low/],
    [['--exclude-outbound-ports', '0-10'], {}, /--exclude-outbound-ports: 0 is out of range 1–65535/],
    [['--exclude-outbound-ports', '22,0-10'], {}, /--exclude-outbound-ports: '22,0-10': 0 is out of range 1–65535/],
    [['--exclude-outbound-ports', '70000'], {}, /^--exclude-outbound-ports: 70000 is out of range 1–65535; expected ports or ranges like 80,8000-8100$/],
    [['--exclude-outbound-ports', '80-'], {}, /'80-' is not a port or a range/],
    [['--exclude-outbound-ports', '*'], {}, /--exclude-outbound-ports: '\*' is not a port or a range/],
    [['--include-outbound-cidrs', '10.0.0.0/8,999.1.1.1/8'], {}, /--include-outbound-cidrs: .* has '999.1.1.1\/8', which is not a CIDR/],
    [['--exclude-outbound-cidrs', '10.1.2.3/33'], {}, /'10.1.2.3\/33', which is not a CIDR/],
    [['--exclude-outbound-cidrs', 'fd00::/129'], {}, /'fd00::\/129'/],
    [['--exclude-outbound-cidrs', 'fe80::1%eth0/64'], {}, /'fe80::1%eth0\/64'/],
    [['--exclude-outbound-cidrs', '10.0.0.0/-1'], {}, /'10.0.0.0\/-1'/],
    [['--exclude-outbound-cidrs', '10.0.0.0/'], {}, /'10.0.0.0\/'/],
    [['--exclude-outbound-cidrs', 'example.com'], {}, /'example.com'/],
    [['--exclude-outbound-cidrs', '10.0.0.0/8,'], {}, /an empty entry/],
    [['--ipv6', 'maybe'], {}, /--ipv6: 'maybe' is not one of auto, on, off/],
    [['--backend', 'iptables'], {}, /--backend: 'iptables' is not one of auto, nft, legacy/],
    [['--cleanup', '--validate'], {}, /cannot be combined/],
    [[], { MESHLET_PROXY_UID: 'root' }, /MESHLET_PROXY_UID: 'root'/],
    [[], { MESHLET_EXCLUDE_OUTBOUND_CIDRS: '10.0.0.0/8,bad' }, /MESHLET_EXCLUDE_OUTBOUND_CIDRS: .*'bad'/],
    [[], { MESHLET_INBOUND_PORTS: '80;443' }, /MESHLET_INBOUND_PORTS: '80;443'/],
    [[], { MESHLET_DRY_RUN: 'sure' }, /MESHLET_DRY_RUN: 'sure' is not a boolean/],
    [[], { MESHLET_BACKEND: 'xtables' }, /MESHLET_BACKEND: 'xtables'/],
  ];
  for (const [argv, env, expected] of cases) {
    t.match(usageError(t, argv, env), expected, `${JSON.stringify(argv)} ${JSON.stringify(env)}`);
  }
});

t.test('flag mistakes: unknown (with the closest flag), missing value, value on a boolean, negative numbers', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--dry-rn'], /^unknown flag '--dry-rn'; did you mean --dry-run\?$/],
    [['--no-proxy-uid'], /^unknown flag '--no-proxy-uid'/],
    [['--proxy-uid'], /^flag --proxy-uid needs a value$/],
    [['--proxy-uid', '--dry-run'], /^flag --proxy-uid needs a value, not the flag '--dry-run'/],
    [['--dry-run=yes'], /^flag --dry-run takes no value \(write --dry-run or --no-dry-run\)$/],
    [['--proxy-uid', '-1'], /^--proxy-uid: '-1' is not an integer between 0 and 4294967294$/],
    [['--proxy-gid', '-5'], /^--proxy-gid: '-5' is not an integer between 0 and 4294967294$/],
    [['--outbound-port', '-80'], /^--outbound-port: '-80' is not a port number/],
    [['--', '--dry-run'], /^unexpected argument '--dry-run' after '--'/],
  ];
  for (const [argv, expected] of cases) t.match(usageError(t, argv), expected, JSON.stringify(argv));
});

t.test("the proxy's own ports (health 15020, admin 15000) cannot be its listeners", async (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--inbound-port', '15020'], {}, /^--inbound-port: 15020 is the proxy's health and metrics port, which is never intercepted; choose another port$/],
    [['--outbound-port', '15020'], {}, /^--outbound-port: 15020 is the proxy's health and metrics port/],
    [['--inbound-port', '15000'], {}, /^--inbound-port: 15000 is the proxy's admin port/],
    [[], { MESHLET_OUTBOUND_PORT: '15000' }, /^MESHLET_OUTBOUND_PORT: 15000 is the proxy's admin port/],
  ];
  for (const [argv, env, expected] of cases) t.match(usageError(t, argv, env), expected, `${JSON.stringify(argv)} ${JSON.stringify(env)}`);
});

t.test('a malformed env value does not matter when a flag overrides it', async (t) => {
  t.equal(parse(['--proxy-uid', '7'], { MESHLET_PROXY_UID: 'garbage' }).proxyUid, 7);
});
