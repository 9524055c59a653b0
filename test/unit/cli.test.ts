import { spawnSync } from 'node:child_process';
import t from 'tap';
import { MESHLET_BIN } from '../../src/testbed/netns.ts';
import { proxyPorts } from '../helpers/ports.ts';

// The `meshlet` binary: every subcommand reports a usage error the same way, one line
// on stderr, `meshlet <command>: MESHLET_ERR_USAGE: <what> (see meshlet <command> --help)`,
// nothing on stdout, exit 2; configuration errors are MESHLET_ERR_CONFIG, one line per
// problem, exit 2. None of these runs anything (no iptables, no listener).

/** The environment without MESHLET_* variables, plus `env`. */
function environment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MESHLET_')));
  return { ...clean, ...env };
}

function meshlet(args: string[], env: NodeJS.ProcessEnv = {}) {
  const run = spawnSync(process.execPath, [MESHLET_BIN, ...args], { env: environment(env), encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const USAGE_LINE = /^(meshlet(?: [a-z]+)*): MESHLET_ERR_USAGE: (.+) \(see (meshlet(?: [a-z]+)*) --help\)\n$/;

t.test('usage errors: one line, the same format for every subcommand, exit 2', async (t) => {
  const cases: Array<[string[], string, RegExp]> = [
    [[], 'meshlet', /^missing command: init, proxy, wait, ca, inject, uninject, webhook, demo$/],
    [['prox'], 'meshlet', /^unknown command 'prox'; did you mean proxy\?$/],
    [['init', '--bogus'], 'meshlet init', /^unknown flag '--bogus'$/],
    [['init', '--proxy-uid'], 'meshlet init', /^flag --proxy-uid needs a value$/],
    [['init', '--proxy-uid', '-1'], 'meshlet init', /^--proxy-uid: '-1' is not an integer between 0 and 4294967294$/],
    [['init', '--dry-run=yes'], 'meshlet init', /^flag --dry-run takes no value/],
    [['init', '--inbound-port', '15020'], 'meshlet init', /^--inbound-port: 15020 is the proxy's health and metrics port/],
    [['init', '--outbound-port', '15020'], 'meshlet init', /^--outbound-port: 15020 is the proxy's health and metrics port/],
    [['proxy', '--confg', 'x'], 'meshlet proxy', /^unknown flag '--confg'; did you mean --config\?$/],
    [['proxy', '--config'], 'meshlet proxy', /^flag --config needs a value$/],
    [['proxy', '--help=yes'], 'meshlet proxy', /^flag --help takes no value/],
    [['proxy', 'extra'], 'meshlet proxy', /^unexpected argument 'extra'/],
    [['demo', '--bogus'], 'meshlet demo', /^unknown flag '--bogus'$/],
    [['demo', '--verbose=1'], 'meshlet demo', /^flag --verbose takes no value/],
    [['ca'], 'meshlet ca', /^missing subcommand: init or issue$/],
    [['ca', 'issue', '--bogus'], 'meshlet ca issue', /^unknown flag '--bogus'$/],
    [['ca', 'init', '--out'], 'meshlet ca init', /^flag --out needs a value$/],
    [['ca', 'init', '--force=yes', '--out', 'x'], 'meshlet ca init', /^flag --force takes no value/],
    [['inject', '--sidecar-mod', 'classic'], 'meshlet inject', /^unknown flag '--sidecar-mod'; did you mean --sidecar-mode\?$/],
    [['inject', '--sidecar-mode', 'sometimes', '-'], 'meshlet inject', /^--sidecar-mode: "sometimes" is not one of native, classic$/],
    [['inject', '--proxy-cpu', 'lots'], 'meshlet inject', /^--proxy-cpu: "lots" is not a Kubernetes quantity/],
    [['inject', '--mesh-cidrs', '10.0.0.0/33'], 'meshlet inject', /^--mesh-cidrs: .*10\.0\.0\.0\/33/],
    [['inject', '--trust-domain', 'Cluster.Local'], 'meshlet inject', /^--trust-domain: invalid trust domain 'Cluster\.Local'/],
    [['uninject', '--sidecar-mode', 'native'], 'meshlet uninject', /^unknown flag '--sidecar-mode'$/],
  ];
  for (const [args, command, what] of cases) {
    const label = `meshlet ${args.join(' ')}`;
    const run = meshlet(args);
    t.equal(run.code, 2, `${label}: exit 2`);
    t.equal(run.stdout, '', `${label}: nothing on stdout`);
    const line = USAGE_LINE.exec(run.stderr);
    t.ok(line, `${label}: one usage line on stderr: ${JSON.stringify(run.stderr)}`);
    t.equal(line?.[1], command, `${label}: names the command`);
    t.equal(line?.[3], command, `${label}: points to its --help`);
    t.match(line?.[2] ?? '', what, label);
  }
});

t.test('a workload SPIFFE ID without /ns/NS/sa/SA is refused by the binary', async (t) => {
  const run = meshlet(['ca', 'issue', '--ca', '/nonexistent', '--spiffe-id', 'spiffe://cluster.local/ns/shop', '--out', '/nonexistent/out']);
  t.equal(run.code, 2);
  t.match(run.stderr, /^meshlet ca issue: MESHLET_ERR_SPIFFE_ID: --spiffe-id: spiffe:\/\/cluster\.local\/ns\/shop is not a workload ID .*\/ns\/NAMESPACE\/sa\/SERVICE_ACCOUNT.*\n$/);
});

t.test('configuration errors: MESHLET_ERR_CONFIG, one line per problem, exit 2, before anything listens', async (t) => {
  const cases: Array<[NodeJS.ProcessEnv, RegExp[]]> = [
    [{ MESHLET_TCP_IDEL_TIMEOUT: '5s' }, [/^MESHLET_TCP_IDEL_TIMEOUT: names no configuration field; did you mean MESHLET_TCP_IDLE_TIMEOUT \(tcp\.idleTimeout\)\?$/]],
    [{ MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/8' }, [/^mesh\.peers: YAML syntax error at line 1, column 21 of the value: .* \(from MESHLET_MESH_PEERS\)$/]],
    [{ MESHLET_LOG_LEVEL: 'verbose' }, [/^log\.level: "verbose" is not one of trace, debug, info, warn, error, fatal \(from MESHLET_LOG_LEVEL\)$/]],
    [{ MESHLET_INBOUND_PORT: '15001', MESHLET_OUTBOUND_PORT: '15001' }, [/^outbound\.port and inbound\.port are both 15001; .*\(outbound\.port from MESHLET_OUTBOUND_PORT, inbound\.port from MESHLET_INBOUND_PORT\)$/]],
    [{ MESHLET_INBOUND_PORT: '70000', MESHLET_TCP_IDLE_TIMEOUT: '5' }, [/^inbound\.port: 70000 is out of range 1–65535 \(from MESHLET_INBOUND_PORT\)$/, /^tcp\.idleTimeout: 5 needs a unit/]],
    [{ MESHLET_INBOUND_PORT: '0' }, [/^inbound\.port: 0 is not a port the interception rules can redirect to; use 1–65535 \(from MESHLET_INBOUND_PORT\)$/]],
  ];
  for (const [env, problems] of cases) {
    // Any free ports, should the configuration load after all.
    const run = meshlet(['proxy'], { ...(await proxyPorts()), ...env });
    const label = JSON.stringify(env);
    t.equal(run.code, 2, `${label}: exit 2`);
    const lines = run.stderr.split('\n').filter((l) => l !== '');
    t.equal(lines.length, problems.length, `${label}: one line per problem: ${run.stderr}`);
    for (const [i, problem] of problems.entries()) {
      t.match(lines[i] ?? '', /^meshlet proxy: MESHLET_ERR_CONFIG: /, label);
      t.match((lines[i] ?? '').replace('meshlet proxy: MESHLET_ERR_CONFIG: ', ''), problem, label);
    }
  }
});
