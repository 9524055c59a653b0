import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { envVariables, loadConfig } from '../../../src/config/load.ts';
import { parseDuration } from '../../../src/config/duration.ts';
import { MeshletError } from '../../../src/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'meshlet-config-'));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const errorOf = (fn: () => unknown): MeshletError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof MeshletError) return err;
    throw err;
  }
  throw new Error('expected a MeshletError');
};

t.test('no file, no env: every field has its default', async (t) => {
  const config = loadConfig({ env: {} });
  t.equal(config.outbound.port, 15001);
  t.equal(config.inbound.port, 15006);
  t.equal(config.health.port, 15020);
  t.equal(config.outbound.connectTimeout, 1000);
  t.equal(config.tcp.idleTimeout, 3_600_000);
  t.equal(config.log.level, 'info');
});

t.test('file overrides defaults, env overrides the file', async (t) => {
  const f = file('ok.yaml', 'outbound:\n  connectTimeout: 250ms\ntcp:\n  idleTimeout: 5m\nlog:\n  level: debug\n');
  const fromFile = loadConfig({ file: f, env: {} });
  t.equal(fromFile.outbound.connectTimeout, 250);
  t.equal(fromFile.tcp.idleTimeout, 300_000);
  t.equal(fromFile.inbound.port, 15006, 'untouched fields keep defaults');
  const withEnv = loadConfig({ file: f, env: { MESHLET_OUTBOUND_CONNECT_TIMEOUT: '2s', MESHLET_INBOUND_PORT: '16006' } });
  t.equal(withEnv.outbound.connectTimeout, 2000);
  t.equal(withEnv.inbound.port, 16006);
  t.equal(withEnv.tcp.idleTimeout, 300_000);
});

t.test('an empty file is the defaults', async (t) => {
  t.equal(loadConfig({ file: file('empty.yaml', ''), env: {} }).outbound.port, 15001);
});

t.test('env names are derived from field paths', async (t) => {
  const vars = envVariables();
  t.same(vars.get('MESHLET_OUTBOUND_CONNECT_TIMEOUT'), ['outbound', 'connectTimeout']);
  t.same(vars.get('MESHLET_TCP_IDLE_TIMEOUT'), ['tcp', 'idleTimeout']);
});

t.test('a typo in a field name names the field and the file', async (t) => {
  const f = file('typo.yaml', 'outbound:\n  conectTimeout: 1s\n');
  const err = errorOf(() => loadConfig({ file: f, env: {} }));
  t.equal(err.code, 'MESHLET_ERR_CONFIG');
  t.match(err.message, /outbound\.conectTimeout: unknown field/);
  t.match(err.message, f);
});

t.test('bad values name the field, the problem and where they came from', async (t) => {
  const cases: Array<[NodeJS.ProcessEnv, RegExp]> = [
    [{ MESHLET_OUTBOUND_CONNECT_TIMEOUT: 'soon' }, /outbound\.connectTimeout: "soon" is not a duration.*MESHLET_OUTBOUND_CONNECT_TIMEOUT/],
    [{ MESHLET_INBOUND_PORT: '70000' }, /inbound\.port: .*65535.*MESHLET_INBOUND_PORT/],
    [{ MESHLET_INBOUND_PORT: 'http' }, /inbound\.port: expected a port number/],
    [{ MESHLET_LOG_LEVEL: 'loud' }, /log\.level: .*info/],
  ];
  for (const [env, pattern] of cases) t.match(errorOf(() => loadConfig({ env })).message, pattern);
});

t.test('every bad field is reported at once', async (t) => {
  const f = file('two.yaml', 'tcp:\n  idleTimeout: 5\nhealth:\n  port: -1\n');
  const err = errorOf(() => loadConfig({ file: f, env: {} }));
  t.match(err.message, /tcp\.idleTimeout/);
  t.match(err.message, /health\.port/);
});

t.test('unreadable or malformed files are clear errors', async (t) => {
  t.match(errorOf(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} })).message, /cannot read config file .*missing\.yaml/);
  t.match(errorOf(() => loadConfig({ file: file('bad.yaml', 'outbound: [1, 2\n'), env: {} })).message, /YAML syntax error/);
  t.match(errorOf(() => loadConfig({ file: file('list.yaml', '- 1\n- 2\n'), env: {} })).message, /mapping/);
});

t.test('durations use Go syntax', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('1.5s'), 1500);
  t.equal(parseDuration('10'), undefined, 'a bare number has no unit');
  t.equal(parseDuration('1 s'), undefined);
  t.equal(parseDuration(''), undefined);
});

t.test('mTLS settings are validated with the field named', async (t) => {
  const ok = loadConfig({
    env: {
      MESHLET_IDENTITY_DIR: '/etc/meshlet/identity',
      MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/8, "fd00::/8"], spiffeId: "spiffe://cluster.local/ns/a/sa/b"}]',
      MESHLET_INBOUND_MTLS: 'strict',
      MESHLET_INBOUND_PER_PORT: '{"9090": {mtls: permissive}}',
      MESHLET_INBOUND_AUTHORIZATION: '[{action: deny, namespaces: [ops]}]',
    },
  });
  t.equal(ok.identity.dir, '/etc/meshlet/identity');
  t.same(ok.mesh.peers[0]?.cidrs, ['10.0.0.0/8', 'fd00::/8']);
  t.equal(ok.inbound.perPort['9090']?.mtls, 'permissive');
  t.equal(ok.inbound.authorization[0]?.action, 'deny');

  const bad: Array<[NodeJS.ProcessEnv, RegExp]> = [
    [{ MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/33]}]' }, /mesh\.peers\.0\.cidrs\.0: "10\.0\.0\.0\/33" is not a CIDR/],
    [{ MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/8], spiffeId: "spiffe://Cluster/x"}]' }, /mesh\.peers\.0\.spiffeId: invalid SPIFFE ID/],
    [{ MESHLET_MESH_PEERS: '[{cidr: 10.0.0.0/8}]' }, /mesh\.peers\.0\.cidr: unknown field/],
    [{ MESHLET_INBOUND_MTLS: 'on' }, /inbound\.mtls: .*strict/],
    [{ MESHLET_INBOUND_AUTHORIZATION: '[{action: maybe}]' }, /inbound\.authorization\.0\.action/],
  ];
  for (const [env, pattern] of bad) t.match(errorOf(() => loadConfig({ env })).message, pattern);
});

t.test('a value that is not YAML is taken as text, not a crash', async (t) => {
  // "*" is what `meshlet init` accepts in MESHLET_INBOUND_PORTS; the proxy must not choke on YAML it can't read.
  t.match(errorOf(() => loadConfig({ env: { MESHLET_LOG_LEVEL: '*' } })).message, /log\.level/);
});

t.test('L7 settings: defaults, env, and errors that name the field', async (t) => {
  const config = loadConfig({ env: {} });
  t.equal(config.outbound.detectTimeout, 1000);
  t.equal(config.inbound.detectTimeout, 1000);
  t.ok(config.protocols.opaquePorts.includes(3306) && config.protocols.opaquePorts.includes(25), 'server-first ports are opaque by default');
  t.same(config.protocols.ports, {});
  t.equal(config.http.maxRequestHeadersKb, 60);
  t.equal(config.http.requestHeadersTimeout, 10_000);
  t.equal(config.http.requestId, true);
  t.same(config.workload, { name: '', namespace: '', app: '', version: '', pod: '', serviceAccount: '' });

  const set = loadConfig({
    env: {
      MESHLET_PROTOCOLS_PORTS: '{"8080": http, "50051": grpc}',
      MESHLET_PROTOCOLS_OPAQUE_PORTS: '[3306]',
      MESHLET_OUTBOUND_DETECT_TIMEOUT: '250ms',
      MESHLET_HTTP_REQUEST_ID: 'false',
      MESHLET_WORKLOAD_NAME: 'cart',
      MESHLET_WORKLOAD_NAMESPACE: 'shop',
    },
  });
  t.same(set.protocols.ports, { '8080': 'http', '50051': 'grpc' });
  t.same(set.protocols.opaquePorts, [3306], 'the list replaces the default');
  t.equal(set.outbound.detectTimeout, 250);
  t.equal(set.http.requestId, false);
  t.equal(set.workload.name, 'cart');
  t.equal(set.workload.namespace, 'shop');

  const err = errorOf(() => loadConfig({ env: { MESHLET_PROTOCOLS_PORTS: '{"8080": https}', MESHLET_HTTP_MAX_REQUEST_HEADERS_KB: '0' } }));
  t.match(err.message, /protocols\.ports\.8080: .*(tcp|http).*\(from MESHLET_PROTOCOLS_PORTS\)/);
  t.match(err.message, /http\.maxRequestHeadersKb: .*\(from MESHLET_HTTP_MAX_REQUEST_HEADERS_KB\)/);
  const typo = errorOf(() => loadConfig({ file: file('typo.yaml', 'protocols:\n  opaquePort: [25]\n'), env: {} }));
  t.match(typo.message, /protocols\.opaquePort: unknown field/);
});

/** The problems of a configuration that does not load, one per line. */
const problems = (sources: Parameters<typeof loadConfig>[0]): string[] => errorOf(() => loadConfig(sources)).message.split('\n');

t.test('a MESHLET_* variable that names no field is an error naming the closest one', async (t) => {
  t.same(problems({ env: { MESHLET_TCP_IDEL_TIMEOUT: '5s' } }), [
    'MESHLET_TCP_IDEL_TIMEOUT: names no configuration field; did you mean MESHLET_TCP_IDLE_TIMEOUT (tcp.idleTimeout)?',
  ]);
  t.match(problems({ env: { MESHLET_OUTBOUND_CONECT_TIMEOUT: '1s' } })[0], /did you mean MESHLET_OUTBOUND_CONNECT_TIMEOUT \(outbound\.connectTimeout\)\?$/);
  t.match(problems({ env: { MESHLET_EXCLUDE_OUTBOUND_PORT: '5432' } })[0], /did you mean MESHLET_EXCLUDE_OUTBOUND_PORTS\?$/, "init's variables are candidates too");
  t.same(problems({ env: { MESHLET_FROBNICATE: 'yes' } }), ['MESHLET_FROBNICATE: names no configuration field (docs/proxy.md lists them)']);
  t.equal(errorOf(() => loadConfig({ env: { MESHLET_TCP_IDEL_TIMEOUT: '5s' } })).code, 'MESHLET_ERR_CONFIG');
});

t.test("MESHLET_CONFIG and meshlet init's variables are not errors: a pod may share one set", async (t) => {
  const env: NodeJS.ProcessEnv = {
    MESHLET_CONFIG: '',
    MESHLET_PROXY_UID: '1337',
    MESHLET_PROXY_GID: '1337',
    MESHLET_INBOUND_PORTS: '*',
    MESHLET_EXCLUDE_INBOUND_PORTS: '22',
    MESHLET_EXCLUDE_OUTBOUND_PORTS: '5432',
    MESHLET_INCLUDE_OUTBOUND_CIDRS: '*',
    MESHLET_EXCLUDE_OUTBOUND_CIDRS: '169.254.169.254/32',
    MESHLET_IPV6: 'auto',
    MESHLET_BACKEND: 'auto',
    MESHLET_DRY_RUN: 'false',
    MESHLET_CLEANUP: 'false',
    MESHLET_VALIDATE: 'true',
    OTHER_VARIABLE: 'x',
  };
  t.equal(loadConfig({ env }).inbound.port, 15006);
});

t.test('an unknown YAML key names the closest field', async (t) => {
  const f = file('keys.yaml', 'outbound:\n  conectTimeout: 1s\ntcp:\n  idle_timeout: 5m\nlog:\n  formatt: json\n');
  t.same(problems({ file: f, env: {} }), [
    `outbound.conectTimeout: unknown field; did you mean connectTimeout? (in ${f}, line 2)`,
    `tcp.idle_timeout: unknown field; did you mean idleTimeout? (in ${f}, line 4)`,
    `log.formatt: unknown field (in ${f}, line 6)`,
  ]);
  t.match(problems({ env: { MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/8], spifeId: "spiffe://td/ns/a/sa/b"}]' } }), [
    /^mesh\.peers\.0\.spifeId: unknown field; did you mean spiffeId\? \(from MESHLET_MESH_PEERS\)$/,
  ]);
});

t.test('every validation message shows the bad value and the accepted form', async (t) => {
  const cases: Array<[NodeJS.ProcessEnv, string]> = [
    [{ MESHLET_LOG_LEVEL: 'verbose' }, 'log.level: "verbose" is not one of trace, debug, info, warn, error, fatal (from MESHLET_LOG_LEVEL)'],
    [{ MESHLET_INBOUND_MTLS: 'on' }, 'inbound.mtls: "on" is not one of permissive, strict, disable (from MESHLET_INBOUND_MTLS)'],
    [{ MESHLET_TCP_IDLE_TIMEOUT: '5' }, 'tcp.idleTimeout: 5 needs a unit, e.g. 5s or 5ms (Go syntax: 500ms, 1s, 1m, 1h30m) (from MESHLET_TCP_IDLE_TIMEOUT)'],
    [{ MESHLET_TCP_IDLE_TIMEOUT: 'true' }, 'tcp.idleTimeout: expected a duration such as 500ms, 1s or 1h30m, got true (from MESHLET_TCP_IDLE_TIMEOUT)'],
    [{ MESHLET_INBOUND_PORT: '70000' }, 'inbound.port: 70000 is out of range 1–65535 (from MESHLET_INBOUND_PORT)'],
    [{ MESHLET_INBOUND_PORT: '-1' }, 'inbound.port: -1 is out of range 1–65535 (from MESHLET_INBOUND_PORT)'],
    [{ MESHLET_INBOUND_PORT: '1.5' }, 'inbound.port: 1.5 is not a port number (1–65535) (from MESHLET_INBOUND_PORT)'],
    [{ MESHLET_INBOUND_PORT: 'http' }, 'inbound.port: expected a port number (1–65535), got "http" (from MESHLET_INBOUND_PORT)'],
    [{ MESHLET_PROTOCOLS_OPAQUE_PORTS: '[0]' }, 'protocols.opaquePorts.0: 0 is out of range 1–65535 (from MESHLET_PROTOCOLS_OPAQUE_PORTS)'],
    [{ MESHLET_PROTOCOLS_OPAQUE_PORTS: '3306,5432' }, 'protocols.opaquePorts: expected a list ([a, b]), got "3306,5432" (from MESHLET_PROTOCOLS_OPAQUE_PORTS)'],
    [{ MESHLET_PROTOCOLS_PORTS: '{"0": http}' }, 'protocols.ports.0: the key 0 is out of range 1–65535 (from MESHLET_PROTOCOLS_PORTS)'],
    [{ MESHLET_INBOUND_PER_PORT: '{web: {mtls: strict}}' }, 'inbound.perPort.web: the key "web" is not a port number (1–65535) (from MESHLET_INBOUND_PER_PORT)'],
    [{ MESHLET_HTTP_MAX_REQUEST_HEADERS_KB: '0' }, 'http.maxRequestHeadersKb: 0 is out of range 1–8192 (from MESHLET_HTTP_MAX_REQUEST_HEADERS_KB)'],
    [{ MESHLET_MESH_PEERS: '[{ports: [80]}]' }, 'mesh.peers.0.cidrs: missing; expected a list ([a, b]) (from MESHLET_MESH_PEERS)'],
  ];
  for (const [env, line] of cases) t.same(problems({ env }), [line], JSON.stringify(env));
  const f = file('values.yaml', 'log:\n  level: verbose\ntcp:\n  idleTimeout: 5\n');
  t.same(problems({ file: f, env: {} }), [
    `tcp.idleTimeout: 5 needs a unit, e.g. 5s or 5ms (Go syntax: 500ms, 1s, 1m, 1h30m) (in ${f}, line 4)`,
    `log.level: "verbose" is not one of trace, debug, info, warn, error, fatal (in ${f}, line 2)`,
  ]);
  // Port 0 would bind a port the kernel picks, which nothing that must reach it can know.
  t.same(problems({ env: { MESHLET_OUTBOUND_PORT: '0', MESHLET_INBOUND_PORT: '0', MESHLET_HEALTH_PORT: '0', MESHLET_ADMIN_PORT: '0' } }), [
    'outbound.port: 0 is not a port the interception rules can redirect to; use 1–65535 (from MESHLET_OUTBOUND_PORT)',
    'inbound.port: 0 is not a port the interception rules can redirect to; use 1–65535 (from MESHLET_INBOUND_PORT)',
    "health.port: 0 is not a port kubelet's probes and Prometheus can be pointed at; use 1–65535 (from MESHLET_HEALTH_PORT)",
    'admin.port: 0 is not a port the admin server can be found at; use 1–65535 (from MESHLET_ADMIN_PORT)',
  ]);
  const zero = file('zero.yaml', 'inbound:\n  port: 0\n');
  t.same(problems({ file: zero, env: {} }), [`inbound.port: 0 is not a port the interception rules can redirect to; use 1–65535 (in ${zero}, line 2)`]);
});

t.test('a YAML syntax error is one line with the line and column, in the file or in a variable', async (t) => {
  t.same(problems({ env: { MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/8' } }), [
    'mesh.peers: YAML syntax error at line 1, column 21 of the value: Flow sequence must end with a ] (from MESHLET_MESH_PEERS)',
  ]);
  t.match(problems({ env: { MESHLET_INBOUND_PER_PORT: '{"9090": {mtls: strict}' } }), [/^inbound\.perPort: YAML syntax error at line 1, column \d+ of the value: .*\(from MESHLET_INBOUND_PER_PORT\)$/]);
  const f = file('syntax.yaml', 'outbound:\n  port: 15001\n connectTimeout: 1s\n');
  const lines = problems({ file: f, env: {} });
  t.equal(lines.length, 1);
  t.match(lines[0], new RegExp(`^config file ${f}: YAML syntax error at line 3, column \\d+: \\S`));
});

t.test("the proxy's own ports: listeners on one port, or on the admin port, are config errors naming both fields", async (t) => {
  t.same(problems({ env: { MESHLET_INBOUND_PORT: '15001' } }), [
    "outbound.port and inbound.port are both 15001; each of the proxy's listeners needs its own port (outbound.port by default, inbound.port from MESHLET_INBOUND_PORT)",
  ]);
  t.match(problems({ env: { MESHLET_OUTBOUND_PORT: '15020' } }), [/^outbound\.port and health\.port are both 15020; .*\(outbound\.port from MESHLET_OUTBOUND_PORT, health\.port by default\)$/]);
  t.match(problems({ env: { MESHLET_INBOUND_PORT: '15020' } }), [/^inbound\.port and health\.port are both 15020/]);
  const f = file('ports.yaml', 'health:\n  port: 15006\n');
  t.match(problems({ file: f, env: {} }), [new RegExp(`^inbound\\.port and health\\.port are both 15006; .*\\(inbound\\.port by default, health\\.port in ${f}, line 2\\)$`)]);
  t.same(problems({ env: { MESHLET_INBOUND_PORT: '15000' } }), [
    "inbound.port: 15000 is the admin port, reserved for the proxy's admin server; choose another port (from MESHLET_INBOUND_PORT)",
  ]);
  t.match(problems({ env: { MESHLET_HEALTH_PORT: '15000' } }), [/^health\.port: 15000 is the admin port/]);
  t.match(problems({ env: { MESHLET_ADMIN_PORT: '15020' } }), [/^health\.port: 15020 is the admin port, reserved .*\(by default\)$/], 'a moved admin port is the one reserved');
  const twice = problems({ env: { MESHLET_ADMIN_PORT: '0', MESHLET_INBOUND_PORT: '0' } });
  t.equal(twice.length, 2, 'port 0 twice: refused as port 0, not also as a clash');
  t.match(twice, [/^inbound\.port: 0 is not a port/, /^admin\.port: 0 is not a port/]);
});

t.test('drain: defaults, and a delay longer than the timeout is an error naming both', async (t) => {
  t.same(loadConfig({ env: {} }).drain, { delay: 5000, timeout: 30_000 });
  t.same(problems({ env: { MESHLET_DRAIN_DELAY: '40s' } }), [
    'drain.delay: 40000 ms is longer than drain.timeout (30000 ms), which ends the whole drain; shorten the delay or lengthen the timeout (from MESHLET_DRAIN_DELAY)',
  ]);
  t.same(loadConfig({ env: { MESHLET_DRAIN_DELAY: '0s', MESHLET_DRAIN_TIMEOUT: '0s' } }).drain, { delay: 0, timeout: 0 }, 'both 0: the drain ends at once');
  t.match(problems({ env: { MESHLET_DRAIN_TIMEOUT: '30' } }), [/^drain\.timeout: 30 needs a unit/]);
});

t.test('health.appProbes: what meshlet inject writes is accepted, anything else named', async (t) => {
  const ok = loadConfig({ env: { MESHLET_HEALTH_APP_PROBES: '{"/app-health/web/livez": {"httpGet": {"path": "/h", "port": 8080}, "timeoutSeconds": 2}, "/app-health/web/readyz": {"tcpSocket": {"port": 8080}}}' } });
  t.same(ok.health.appProbes['/app-health/web/readyz'], { tcpSocket: { port: 8080 } });
  t.same(loadConfig({}).health.appProbes, {}, 'none by default');
  const problems = (value: string) => {
    try {
      loadConfig({ env: { MESHLET_HEALTH_APP_PROBES: value } });
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  t.match(problems('{"/healthz": {"tcpSocket": {"port": 1}}}'), /^health\.appProbes\.\/healthz: expected a path \/app-health\/<container>\/livez, readyz or startupz .*\(from MESHLET_HEALTH_APP_PROBES\)/);
  t.match(problems('{"/app-health/web/livez": {"tcpSocket": {"port": 1}, "grpc": {"port": 2}}}'), /health\.appProbes\.\/app-health\/web\/livez: needs exactly one of httpGet, tcpSocket, grpc/);
  t.match(problems('{"/app-health/web/livez": {"httpGet": {"port": "http"}}}'), /health\.appProbes\.\/app-health\/web\/livez\.httpGet\.port: expected a port number/, 'named ports must have been resolved');
});

t.test('telemetry settings: the metric prefix and the access log, with errors that name the field', async (t) => {
  const config = loadConfig({ env: {} });
  t.equal(config.metrics.prefix, 'meshlet');
  t.same(config.accessLog, { enabled: false, sampleRatio: 1 }, 'the access log is off by default');
  const set = loadConfig({ env: { MESHLET_METRICS_PREFIX: 'istio', MESHLET_ACCESS_LOG_ENABLED: 'true', MESHLET_ACCESS_LOG_SAMPLE_RATIO: '0.25', MESHLET_WORKLOAD_POD: 'cart-7d4b9c8f6d-x2x9q' } });
  t.equal(set.metrics.prefix, 'istio');
  t.same(set.accessLog, { enabled: true, sampleRatio: 0.25 });
  t.equal(set.workload.pod, 'cart-7d4b9c8f6d-x2x9q');
  t.same(problems({ env: { MESHLET_ACCESS_LOG_SAMPLE_RATIO: '1.5' } }), ['accessLog.sampleRatio: 1.5 is not a ratio between 0 and 1 (from MESHLET_ACCESS_LOG_SAMPLE_RATIO)']);
  t.same(problems({ env: { MESHLET_METRICS_PREFIX: 'my-mesh' } }), ['metrics.prefix: "my-mesh" is not a metric name prefix (letters, digits and _, not starting with a digit) (from MESHLET_METRICS_PREFIX)']);
  t.match(problems({ file: file('log.yaml', 'accessLog:\n  sampleRatio: half\n'), env: {} })[0], /^accessLog\.sampleRatio: expected a ratio between 0 and 1, got "half" \(in .*log\.yaml, line 2\)$/);
});
