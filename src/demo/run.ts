import path from 'node:path';
import { APP_UID, PROXY_UID, REPO_ROOT, Testbed, type Pod, type SpawnedProcess } from '../testbed/netns.ts';
import { DemoFailure, firstLine } from './failure.ts';
import { describeRules, installRules, redirectProblems } from './rules.ts';
import {
  bypassProblems,
  claim,
  formatTrace,
  meshProblems,
  parseConnectionLogs,
  parseReadyPorts,
  traceRequest,
  type ClientRequest,
  type PodEvidence,
  type ReadyPorts,
  type RequestTrace,
} from './trace.ts';

// The demo scenario: two pods, the rules, both sidecars, a tiny HTTP app, a few requests
// through the mesh and one around it, each printed with the path its evidence shows.

export const HTTP_APP = path.join(REPO_ROOT, 'src/testbed/apps/http-app.ts');
const APP_PORT = 8080;
/** How long a sidecar may take to log a connection after the client is done with it. */
const LOG_WAIT_MS = 3000;

export interface DemoIO {
  /** One line of the demo's own output. */
  out(line: string): void;
  /** Called as soon as the pods exist, so the caller can tear them down whatever happens. */
  onTestbed(tb: Testbed): void;
  /** Called for each process started, so the caller can show its output with --verbose. */
  onProcess(label: string, proc: SpawnedProcess): void;
}

interface Side {
  pod: Pod;
  proxy: SpawnedProcess;
  ports: ReadyPorts;
}

function evidence(side: Side): PodEvidence {
  return {
    name: side.pod.name,
    addresses: [side.pod.ipv4, side.pod.ipv6],
    ports: side.ports,
    logs: parseConnectionLogs(side.proxy.output().stdout),
  };
}

async function startSidecar(pod: Pod, io: DemoIO): Promise<Side> {
  let proxy: SpawnedProcess;
  try {
    proxy = await pod.startProxy({ MESHLET_LOG_LEVEL: 'debug' });
  } catch (err) {
    throw new DemoFailure(`the sidecar in pod ${pod.name} did not become ready: ${firstLine((err as Error).message)}`);
  }
  io.onProcess(`pod ${pod.name} meshlet proxy`, proxy);
  const ports = parseReadyPorts(proxy.output().stdout);
  if (!ports) throw new DemoFailure(`the sidecar in pod ${pod.name} reported ready without its listener ports`);
  return { pod, proxy, ports };
}

async function startApp(pod: Pod, io: DemoIO): Promise<SpawnedProcess> {
  const app = pod.node([HTTP_APP, '--pod', pod.name, '--port', String(APP_PORT)], { uid: APP_UID });
  io.onProcess(`pod ${pod.name} http-app`, app);
  try {
    await app.waitForLine(/"listening"/, 10_000);
  } catch (err) {
    throw new DemoFailure(`the http app in pod ${pod.name} did not start: ${firstLine((err as Error).message)}`);
  }
  return app;
}

/** One GET with curl, run in `pod` as the app user; what curl saw plus the app's JSON answer. */
async function curl(pod: Pod, url: string): Promise<ClientRequest> {
  const argv = ['curl', '-q', '-sS', '-g', '--noproxy', '*', '--max-time', '5', '-w', '\n%{json}', url];
  const result = await pod.run(argv, { uid: APP_UID, timeoutMs: 10_000 });
  if (result.code !== 0) throw new DemoFailure(`GET ${url} from pod ${pod.name} failed: ${firstLine(result.stderr) || `curl exited ${result.code}`}`);
  const nl = result.stdout.lastIndexOf('\n');
  try {
    const info = JSON.parse(result.stdout.slice(nl + 1)) as Record<string, unknown>;
    const reply = JSON.parse(result.stdout.slice(0, nl)) as ClientRequest['reply'];
    return {
      method: String(info.method ?? 'GET'),
      url,
      status: Number(info.http_code),
      timeMs: Number(info.time_total) * 1000,
      localIp: String(info.local_ip),
      localPort: Number(info.local_port),
      remoteIp: String(info.remote_ip),
      remotePort: Number(info.remote_port),
      reply,
    };
  } catch {
    throw new DemoFailure(`GET ${url} from pod ${pod.name} gave an answer that is not the http app's: ${firstLine(result.stdout).slice(0, 120)}`);
  }
}

/** Re-reads the sidecars' logs until `done` holds for the trace or the wait is over. */
async function traceWhenLogged(
  request: ClientRequest,
  client: Side,
  server: Side,
  used: Set<string>,
  done: (t: RequestTrace) => boolean,
  waitMs = LOG_WAIT_MS,
): Promise<RequestTrace> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const trace = traceRequest(request, evidence(client), evidence(server), used);
    if (done(trace) || Date.now() >= deadline) return trace;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Sum of a counter's samples with the given reporter label, from the sidecar's own metrics. */
async function openedConnections(side: Side, reporter: 'source' | 'destination'): Promise<number> {
  const url = `http://127.0.0.1:${side.ports.health}/stats/prometheus`;
  // As the proxy UID, which the rules never redirect, so this works whatever they do to loopback.
  const result = await side.pod.run(['curl', '-q', '-sS', '--noproxy', '*', '--max-time', '5', url], { uid: PROXY_UID, timeoutMs: 10_000 });
  if (result.code !== 0) throw new DemoFailure(`cannot read the metrics of pod ${side.pod.name}'s sidecar: ${firstLine(result.stderr)}`);
  let total = 0;
  for (const line of result.stdout.split('\n')) {
    if (line.startsWith('meshlet_tcp_connections_opened_total{') && line.includes(`reporter="${reporter}"`)) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

export async function runDemo(io: DemoIO): Promise<void> {
  const tb = await Testbed.create(['a', 'b']);
  io.onTestbed(tb);
  const [podA, podB] = [tb.pod('a'), tb.pod('b')];
  io.out(`pods      a ${podA.ipv4} ${podA.ipv6} · b ${podB.ipv4} ${podB.ipv6} (network namespaces ml${tb.id}-*, one bridge)`);

  // Like an init container: the rules first, then the sidecar.
  const [rulesA, rulesB] = await Promise.all([installRules(podA), installRules(podB)]);
  const [inA, inB] = [describeRules(rulesA), describeRules(rulesB)];
  io.out(`rules     meshlet init in a and b (${rulesA.binary}): ${inA}${inA === inB ? '' : `; in b: ${inB}`}`);

  const [a, b] = await Promise.all([startSidecar(podA, io), startSidecar(podB, io)]);
  for (const [side, rules] of [[a, rulesA], [b, rulesB]] as const) {
    const problems = redirectProblems(rules, side.ports);
    if (problems.length > 0) throw new DemoFailure(`the rules in pod ${side.pod.name} miss its sidecar: ${problems.join('; ')}`);
  }
  // The app in a is only there to answer a's own loopback request, which the rules leave alone.
  await Promise.all([startApp(podB, io), startApp(podA, io)]);
  io.out(`sidecars  meshlet proxy as uid ${PROXY_UID} in a and b · http-app on :${APP_PORT} as uid ${APP_UID} in b (and a)`);
  io.out('');

  const used = new Set<string>();
  let meshRequests = 0;
  for (const target of [podB.ipv4, `[${podB.ipv6}]`]) {
    const request = await curl(podA, `http://${target}:${APP_PORT}/hello`);
    const trace = await traceWhenLogged(request, a, b, used, (t) => t.outbound !== undefined && t.inbound !== undefined);
    claim(trace, used);
    for (const line of formatTrace(trace)) io.out(line);
    const problems = meshProblems(trace, evidence(a), evidence(b));
    if (problems.length > 0) throw new DemoFailure(`GET ${request.url} did not go through both sidecars: ${problems.join('; ')}`);
    meshRequests++;
  }

  // Loopback inside pod a: the rules return it before any redirect, so no sidecar sees it.
  // The sidecars count a connection when they accept it, so the counters settle the
  // question at once; a sidecar logs only when the connection has closed, so if the
  // counters say it was intercepted (or cannot be read), wait for that log line too.
  const loopback = await curl(podA, `http://127.0.0.1:${APP_PORT}/hello`);
  let counts: Record<'aSource' | 'aDestination' | 'bSource' | 'bDestination', number> | undefined;
  let metricsError: unknown;
  try {
    counts = {
      aSource: await openedConnections(a, 'source'),
      aDestination: await openedConnections(a, 'destination'),
      bSource: await openedConnections(b, 'source'),
      bDestination: await openedConnections(b, 'destination'),
    };
  } catch (err) {
    metricsError = err;
  }
  const suspicious = counts === undefined || counts.aSource !== meshRequests || counts.aDestination !== 0;
  const proxied = (t: RequestTrace) => t.outbound !== undefined || t.inbound !== undefined;
  const bypass = await traceWhenLogged(loopback, a, a, used, proxied, suspicious ? LOG_WAIT_MS : 0);
  for (const line of formatTrace(bypass, 'loopback, inside a')) io.out(line);
  if (metricsError !== undefined || counts === undefined) throw metricsError;
  const bypassIssues = bypassProblems(bypass, [evidence(a), evidence(b)]);
  if (bypassIssues.length > 0) throw new DemoFailure(`GET ${loopback.url} inside a was intercepted: ${bypassIssues.join('; ')}`);

  io.out('');
  io.out(
    `metrics   meshlet_tcp_connections_opened_total: a's sidecar ${counts.aSource} with reporter="source", ` +
      `b's ${counts.bDestination} with reporter="destination"`,
  );
  const expected = { aSource: meshRequests, aDestination: 0, bSource: 0, bDestination: meshRequests };
  const off = (Object.keys(expected) as Array<keyof typeof expected>).filter((k) => counts[k] !== expected[k]);
  if (off.length > 0) {
    throw new DemoFailure(
      `the sidecars' metrics do not match the ${meshRequests} requests sent through the mesh: ` +
        off.map((k) => `${k} ${counts[k]}, expected ${expected[k]}`).join('; '),
    );
  }
}
