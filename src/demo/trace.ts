import { formatHostPort } from '../net/addresses.ts';

// Reconstructs the path a request took from evidence only: the client's own view of
// the connection (curl's local and remote address), the sidecars' connection logs
// (debug level, one line per finished connection) and what the server app saw.
// Nothing here assumes the rules worked; a hop is shown only if a log line proves it.

/**
 * One `"msg":"connection"` or `"msg":"request"` line of a sidecar's access log
 * (src/telemetry/access-log.ts; a request line has a request id): HTTP between sidecars
 * shares one long-lived connection, so its hops show as requests.
 */
export interface ConnectionLog {
  direction: 'outbound' | 'inbound';
  conn: number;
  request?: string;
  peer: string;
  dst: string;
  received: number;
  sent: number;
  flag: string;
  reason?: string;
  durationMs: number;
}

/** The listener ports a sidecar reported in its `"msg":"ready"` line. */
export interface ReadyPorts {
  outbound: number;
  inbound: number;
  health: number;
}

/** What the http-app answered (src/testbed/apps/http-app.ts). */
export interface AppReply {
  pod: string;
  remoteAddress: string;
  remotePort: number;
}

/** One request as the client saw it. */
export interface ClientRequest {
  method: string;
  url: string;
  status: number;
  timeMs: number;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  reply: AppReply;
}

/** A pod as far as tracing needs: its name, addresses, and its sidecar's log so far. */
export interface PodEvidence {
  name: string;
  addresses: string[];
  ports: ReadyPorts;
  logs: ConnectionLog[];
}

export type Hop =
  | { kind: 'client'; pod: string; address: string }
  | { kind: 'outbound'; pod: string; port: number; log: ConnectionLog }
  | { kind: 'inbound'; pod: string; port: number; log: ConnectionLog }
  | { kind: 'server'; pod: string; saw: string; sawWho: string };

export interface RequestTrace {
  request: ClientRequest;
  client: string;
  dst: string;
  outbound?: Hop & { kind: 'outbound' };
  inbound?: Hop & { kind: 'inbound' };
  hops: Hop[];
}

function parseJsonLines(stdout: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value !== null && typeof value === 'object') out.push(value as Record<string, unknown>);
    } catch {
      // a line still being written, or not JSON: not evidence
    }
  }
  return out;
}

export function parseConnectionLogs(stdout: string): ConnectionLog[] {
  return parseJsonLines(stdout)
    .filter((o) => (o.msg === 'connection' || o.msg === 'request') && (o.direction === 'outbound' || o.direction === 'inbound'))
    .filter((o) => typeof o.downstream_remote_address === 'string' && typeof o.upstream_host === 'string' && typeof o.conn === 'number')
    .map((o) => ({
      direction: o.direction as ConnectionLog['direction'],
      conn: o.conn as number,
      ...(o.msg === 'request' ? { request: String(o.request_id ?? o.start_time) } : {}),
      peer: o.downstream_remote_address as string,
      dst: o.upstream_host as string,
      received: Number(o.bytes_received),
      sent: Number(o.bytes_sent),
      flag: String(o.response_flags),
      ...(typeof o.reason === 'string' ? { reason: o.reason } : {}),
      durationMs: Number(o.duration),
    }));
}

export function parseReadyPorts(stdout: string): ReadyPorts | undefined {
  const ready = parseJsonLines(stdout).find((o) => o.msg === 'ready');
  if (!ready) return undefined;
  const { outbound, inbound, health } = ready;
  if (typeof outbound !== 'number' || typeof inbound !== 'number' || typeof health !== 'number') return undefined;
  return { outbound, inbound, health };
}

/** `10.0.0.1:80` → `10.0.0.1`, `[fd00::1]:80` → `fd00::1`. */
export function hostOf(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(1, hostPort.indexOf(']'));
  return hostPort.slice(0, hostPort.lastIndexOf(':'));
}

/**
 * Follows one request: the client pod's sidecar must have logged an outbound connection
 * from exactly the client's address and port to the original destination; the server
 * pod's sidecar an inbound connection to that destination from the client pod. `used`
 * holds log entries earlier traces claimed, so each log line explains one request.
 */
export function traceRequest(request: ClientRequest, client: PodEvidence, server: PodEvidence, used: Set<string>): RequestTrace {
  const clientAddr = formatHostPort(request.localIp, request.localPort);
  const dst = formatHostPort(request.remoteIp, request.remotePort);
  const key = (pod: PodEvidence, log: ConnectionLog) => logKey(pod.name, log);
  const unused = (pod: PodEvidence) => pod.logs.filter((l) => !used.has(key(pod, l)));

  const hops: Hop[] = [{ kind: 'client', pod: client.name, address: clientAddr }];
  const trace: RequestTrace = { request, client: clientAddr, dst, hops };

  const outLog = unused(client).find((l) => l.direction === 'outbound' && l.peer === clientAddr && l.dst === dst);
  if (outLog) {
    trace.outbound = { kind: 'outbound', pod: client.name, port: client.ports.outbound, log: outLog };
    hops.push(trace.outbound);
  }
  const inLog = unused(server).find(
    (l) => l.direction === 'inbound' && l.dst === dst && client.addresses.includes(hostOf(l.peer)),
  );
  if (inLog) {
    trace.inbound = { kind: 'inbound', pod: server.name, port: server.ports.inbound, log: inLog };
    hops.push(trace.inbound);
  }

  const saw = formatHostPort(request.reply.remoteAddress, request.reply.remotePort);
  let sawWho: string;
  if (saw === clientAddr) sawWho = 'the client itself';
  else if (inLog && server.addresses.includes(request.reply.remoteAddress)) sawWho = `${server.name} itself, i.e. ${server.name}'s sidecar`;
  else if (outLog && (client.addresses.includes(request.reply.remoteAddress) || request.reply.remoteAddress === request.remoteIp)) {
    // From the client pod's address, or (loopback) from the very address it connected to.
    sawWho = `${client.name}'s sidecar`;
  }
  else sawWho = 'an unexpected source';
  hops.push({ kind: 'server', pod: request.reply.pod, saw, sawWho });
  return trace;
}

const logKey = (pod: string, log: ConnectionLog) => `${pod}#${log.conn}#${log.request ?? ''}`;

/** Marks the log lines a trace used, so later requests cannot claim them. */
export function claim(trace: RequestTrace, used: Set<string>): void {
  if (trace.outbound) used.add(logKey(trace.outbound.pod, trace.outbound.log));
  if (trace.inbound) used.add(logKey(trace.inbound.pod, trace.inbound.log));
}

/** Why this trace is not a request that went app → sidecar → sidecar → app, or [] when it is. */
export function meshProblems(trace: RequestTrace, client: PodEvidence, server: PodEvidence): string[] {
  const problems: string[] = [];
  const { request } = trace;
  if (request.status !== 200) problems.push(`answered ${request.status}`);
  if (!trace.outbound) problems.push(`${client.name}'s sidecar logged no outbound connection from ${trace.client} to ${trace.dst}`);
  else if (trace.outbound.log.flag !== '-') problems.push(`${client.name}'s sidecar ended it with flag ${trace.outbound.log.flag}`);
  if (!trace.inbound) problems.push(`${server.name}'s sidecar logged no inbound connection to ${trace.dst}`);
  else if (trace.inbound.log.flag !== '-') problems.push(`${server.name}'s sidecar ended it with flag ${trace.inbound.log.flag}`);
  if (request.reply.pod !== server.name) problems.push(`answered by pod ${request.reply.pod}, not ${server.name}`);
  if (!server.addresses.includes(request.reply.remoteAddress)) {
    problems.push(`${server.name}'s app saw source ${request.reply.remoteAddress}, not its own sidecar`);
  }
  return problems;
}

/** Why this trace is not a request that went straight from app to app, or [] when it is. */
export function bypassProblems(trace: RequestTrace, pods: PodEvidence[]): string[] {
  const problems: string[] = [];
  if (trace.request.status !== 200) problems.push(`answered ${trace.request.status}`);
  for (const pod of pods) {
    const seen = pod.logs.find((l) => l.peer === trace.client || l.dst === trace.dst);
    if (seen) problems.push(`${pod.name}'s sidecar logged it (${seen.direction} ${seen.peer} → ${seen.dst})`);
  }
  const saw = formatHostPort(trace.request.reply.remoteAddress, trace.request.reply.remotePort);
  if (saw !== trace.client) problems.push(`the app saw ${saw}, not the client's ${trace.client}`);
  return problems;
}

function describeHop(hop: Hop): string {
  switch (hop.kind) {
    case 'client':
      return `${hop.pod} app ${hop.address}`;
    case 'outbound':
      return `${hop.pod} meshlet outbound :${hop.port} (original dst ${hop.log.dst})`;
    case 'inbound':
      return `${hop.pod} meshlet inbound :${hop.port} (from ${hop.log.peer})`;
    case 'server':
      return `${hop.pod} app (saw source ${hop.saw}, ${hop.sawWho})`;
  }
}

/** Two lines: the request and its outcome, then the path it took. */
export function formatTrace(trace: RequestTrace, note = ''): string[] {
  const r = trace.request;
  const proxied = trace.outbound !== undefined || trace.inbound !== undefined;
  const path = trace.hops.map(describeHop).join(' → ');
  return [
    `${r.method} ${r.url}${note ? ` (${note})` : ''} → ${r.status} in ${Math.max(1, Math.round(r.timeMs))} ms`,
    `  ${path}${proxied ? '' : ' — not intercepted, no sidecar logged it'}`,
  ];
}
