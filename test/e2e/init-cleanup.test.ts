import t from 'tap';
import { Testbed, testbedUnavailable, type Pod } from '../../src/testbed/netns.ts';

// `meshlet init` then `meshlet init --cleanup` leaves the pod's netfilter state as it
// found it: the iptables-save output of all four tools (nft and legacy, IPv4 and IPv6)
// is the same text before and after, not merely equivalent. Each pod here is fresh and
// nothing lists a table in it before the "before" snapshot, since listing the nat table
// with iptables-legacy creates it (that was the bug: the backend probe did exactly that).

const TOOLS = ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save'] as const;

/** Every tool's output without its `#` comment lines (they carry timestamps) and counters. */
async function saveAll(pod: Pod): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const tool of TOOLS) {
    const { stdout } = await pod.runOk([tool]);
    out[tool] = stdout
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .map((line) => line.replace(/\[\d+:\d+\]$/, '[0:0]'))
      .join('\n');
  }
  return out;
}

/** Rules that are not meshlet's, in the nat table of iptables-nft, as a CNI plugin might leave them. */
const CNI_RULES = `*nat
:CNI-HOSTPORT-DNAT - [0:0]
-A OUTPUT -p tcp -j CNI-HOSTPORT-DNAT
COMMIT
`;

const unavailable = testbedUnavailable();
if (unavailable) {
  t.plan(0, unavailable);
} else {
  const tb = await Testbed.create(['auto', 'nft', 'seeded', 'legacy']);
  t.teardown(() => tb.destroy());

  for (const [pod, args] of [['auto', []], ['nft', ['--backend', 'nft']]] as const) {
    t.test(`${args.join(' ') || 'auto backend'}: cleanup leaves all four iptables-save outputs exactly as before`, async (t) => {
      const p = tb.pod(pod);
      const before = await saveAll(p);
      const installed = await p.init([...args, '--ipv6', 'on']);
      t.equal(installed.code, 0, installed.stderr);
      t.match(installed.stdout, /IPv4 rules installed with iptables-nft/);
      const during = await saveAll(p);
      t.match(during['iptables-nft-save'], /MESHLET_OUTPUT/, 'the rules were really there');
      t.match(during['ip6tables-nft-save'], /MESHLET_OUTPUT/);
      t.equal(during['iptables-legacy-save'], before['iptables-legacy-save'], 'installing with nft creates no legacy table');
      const cleaned = await p.init([...args, '--cleanup']);
      t.equal(cleaned.code, 0, cleaned.stderr);
      t.same(await saveAll(p), before, 'byte for byte, every tool');
    });
  }

  t.test('a nat table that holds other rules stays, with them, and nothing else', async (t) => {
    const p = tb.pod('seeded');
    await p.runOk(['iptables-nft-restore', '-w', '10', '--noflush'], { input: CNI_RULES });
    const before = await saveAll(p);
    t.match(before['iptables-nft-save'], /CNI-HOSTPORT-DNAT/);
    t.equal((await p.init(['--ipv6', 'on'])).code, 0);
    t.equal((await p.init(['--cleanup'])).code, 0);
    t.same(await saveAll(p), before);
  });

  t.test('legacy backend: only the nat tables init created remain, empty (x_tables cannot delete a table)', async (t) => {
    const p = tb.pod('legacy');
    const before = await saveAll(p);
    t.equal((await p.init(['--backend', 'legacy', '--ipv6', 'on'])).code, 0);
    t.equal((await p.init(['--backend', 'legacy', '--cleanup'])).code, 0);
    const after = await saveAll(p);
    t.equal(after['iptables-nft-save'], before['iptables-nft-save'], 'nft untouched');
    t.equal(after['ip6tables-nft-save'], before['ip6tables-nft-save'], 'nft untouched');
    for (const tool of ['iptables-legacy-save', 'ip6tables-legacy-save'] as const) {
      const added = after[tool]!.replace(before[tool]!, '');
      t.equal(added.trim(), '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT', `${tool}: an empty nat table and nothing else`);
    }
  });
}
