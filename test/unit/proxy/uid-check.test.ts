import t from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { isMeshletError } from '../../../src/errors.ts';
import type { CommandResult } from '../../../src/iptables/exec.ts';
import { isExempt, outboundExemptions } from '../../../src/iptables/exemptions.ts';
import { parseInitOptions } from '../../../src/iptables/options.ts';
import { planInstall } from '../../../src/iptables/plan.ts';
import { renderRestore } from '../../../src/iptables/render.ts';
import { buildRuleSet } from '../../../src/iptables/rules.ts';
import { createLogger } from '../../../src/log.ts';
import { checkProxyIdentity, judge, readInstalledRules } from '../../../src/proxy/uid-check.ts';

// The proxy refuses to start under a UID/GID that the interception rules do not exempt:
// read from the installed rules when it may, from proxy.uid/proxy.gid when it may not.

/** The nat rules `meshlet init --proxy-uid <uid> --proxy-gid <gid>` installs, as iptables-save prints them. */
const installed = (uid: number, gid = uid) =>
  renderRestore(planInstall(buildRuleSet(parseInitOptions(['--proxy-uid', String(uid), '--proxy-gid', String(gid)], {}), 4), []));

const config = loadConfig({ env: {} });

t.test('exemptions are read from the nat rules: owners returned before the redirect to the outbound port', async (t) => {
  const e = outboundExemptions(installed(1337, 2000), 15001);
  t.same(e, { redirects: true, uids: [[1337, 1337]], gids: [[2000, 2000]] });
  t.ok(isExempt(e, 1337, 0), 'by uid');
  t.ok(isExempt(e, 0, 2000), 'by gid');
  t.notOk(isExempt(e, 0, 0));
  t.notOk(outboundExemptions(installed(1337), 15002).redirects, 'a redirect elsewhere is not interception of this proxy');
  t.same(outboundExemptions('*filter\n-A OUTPUT -m owner --uid-owner 7 -j ACCEPT\nCOMMIT\n', 15001).uids, [], 'only the nat table counts');
  const odd = '*nat\n-A OUTPUT -m owner ! --uid-owner 5 -j RETURN\n-A OUTPUT -m owner --uid-owner 1000-1999 -j RETURN\n-A OUTPUT -m owner --uid-owner 7 -j MARK\nCOMMIT\n';
  t.same(outboundExemptions(odd, 15001).uids, [[1000, 1999]], 'negated matches and other targets are no exemption; ranges are');
});

t.test('against readable rules: the exempted uid or gid starts, anyone else is refused with both named', async (t) => {
  const rules = { text: installed(1337) };
  t.equal(judge({ uid: 1337, gid: 1337 }, config, rules).refusal, undefined);
  t.equal(judge({ uid: 5, gid: 1337 }, config, rules).refusal, undefined, 'the gid is enough, as for the rules');
  const { refusal } = judge({ uid: 0, gid: 0 }, config, rules);
  t.match(refusal, /redirect outbound traffic to port 15001 and exempt uid 1337 and gid 1337, but this process runs as uid 0 \(gid 0\): every connection it opens would come back to it\. Run it as uid 1337/);
  t.notMatch(refusal, /\n/, 'one line');
  t.equal(judge({ uid: 0, gid: 0 }, config, { text: '' }).refusal, undefined, 'no rules: no interception, nothing to check');
  const other = loadConfig({ env: { MESHLET_PROXY_UID: '0' } });
  t.match(judge({ uid: 0, gid: 0 }, other, rules).refusal, /exempt uid 1337/, 'readable rules win over proxy.uid');
});

t.test('without readable rules: checked against proxy.uid / proxy.gid, and the debug note says so', async (t) => {
  const unreadable = { unreadable: 'iptables-nft-save: Permission denied (you must be root)' };
  const ok = judge({ uid: 1337, gid: 1337 }, config, unreadable);
  t.equal(ok.refusal, undefined);
  t.match(ok.note, /could not read the interception rules \(iptables-nft-save: Permission denied.*\); checked against proxy\.uid 1337/);
  t.match(judge({ uid: 0, gid: 0 }, config, unreadable).refusal, /runs as uid 0 \(gid 0\), but proxy\.uid is 1337 \(gid 1337\), the identity the interception rules exempt/);
  const configured = loadConfig({ env: { MESHLET_PROXY_UID: '1000', MESHLET_PROXY_GID: '3000' } });
  t.equal(judge({ uid: 1000, gid: 1000 }, configured, unreadable).refusal, undefined);
  t.equal(judge({ uid: 7, gid: 3000 }, configured, unreadable).refusal, undefined, 'proxy.gid');
  t.match(judge({ uid: 7, gid: 7 }, configured, unreadable).refusal, /proxy\.uid is 1000 \(gid 3000\)/);
  const empty = loadConfig({ env: { MESHLET_PROXY_UID: '', MESHLET_PROXY_GID: '' } });
  t.same([empty.proxy.uid, empty.proxy.gid], [1337, undefined], "empty variables are unset, as meshlet init reads them");
});

const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '' });
const denied: CommandResult = { code: 1, stdout: '', stderr: 'iptables-save v1.8.9 (nf_tables): Permission denied (you must be root)\n' };
const missing: CommandResult = { code: null, stdout: '', stderr: '', spawnError: Object.assign(new Error('spawn ENOENT'), { code: 'ENOENT' }) };
const answering = (answers: Record<string, CommandResult>) => async (command: string) => answers[command] ?? missing;

t.test('the rules are read from every backend and family that answers', async (t) => {
  const rules = await readInstalledRules(answering({ 'iptables-legacy-save': ok(installed(1338)), 'iptables-nft-save': ok(''), 'ip6tables-nft-save': denied }));
  t.ok('text' in rules && outboundExemptions(rules.text, 15001).uids[0]?.[0] === 1338, 'legacy rules found beside an empty nft');
  t.same(await readInstalledRules(answering({ 'iptables-nft-save': denied, 'iptables-legacy-save': denied })), {
    unreadable: 'iptables-nft-save: iptables-save v1.8.9 (nf_tables): Permission denied (you must be root)',
  });
  t.same(await readInstalledRules(answering({})), { unreadable: 'no iptables-save on PATH' });
  const plain = await readInstalledRules(answering({ 'iptables-save': ok(installed(1337)) }));
  t.ok('text' in plain, 'plain iptables-save where the backend-named ones do not exist');
});

t.test('checkProxyIdentity throws MESHLET_ERR_PROXY_UID when the check fails', async (t) => {
  const log = createLogger('silent');
  const uid = process.geteuid!();
  const exec = answering({ 'iptables-nft-save': ok(installed(uid + 1)) });
  const err = await checkProxyIdentity(config, log, exec).then(() => undefined, (e: unknown) => e);
  t.ok(isMeshletError(err, 'MESHLET_ERR_PROXY_UID'), String(err));
  await t.resolves(checkProxyIdentity(config, log, answering({ 'iptables-nft-save': ok(installed(uid)) })));
});
