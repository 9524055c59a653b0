// Instructions per message of the HTTP/1.1 parser alone, counted: one process under
// valgrind's callgrind parses the same message again and again; after a warm-up long
// enough for V8 to settle its code, the counts are zeroed, a fixed number of messages is
// parsed, and the counts are dumped. The messages are what the inbound sidecar of the
// l7 scenario reads: the request an outbound sidecar forwards from h2load (Host,
// user-agent, x-request-id) and the app's node:http response (five fields). With
// --filter the response also goes through the hop-by-hop filter the upstream side runs
// (the fields the parser marked dropped).
//
//   node bench/parser-instructions.ts [--kind request|response] [--warm 300000] [--messages 20000] [--filter] [--top 20]
//
// Read the functions, not only the total: V8 may compile or collect in the counted
// window of one run and not of the next, which moves the total by a few thousand. A
// function's own count usually repeats for one build, but not always: V8 may inline
// differently from one run to the next (the five-field response's field lines counted
// 4 370 in one run and 4 720 in another, same build), so run twice when it matters. The pair's count
// (bench/instructions.ts) says what a parser change is worth through the proxies.
// Needs valgrind and `npm run dist`.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { grouped, largest, perfMapPath, readCosts, readPerfMap } from './lib/callgrind.ts';

const { values } = parseArgs({
  options: {
    kind: { type: 'string', default: 'response' },
    warm: { type: 'string', default: '300000' },
    messages: { type: 'string', default: '20000' },
    filter: { type: 'boolean', default: false },
    top: { type: 'string', default: '20' },
    child: { type: 'string' },
  },
});

const REQUEST =
  'GET / HTTP/1.1\r\nHost: 10.0.51.2:8080\r\nuser-agent: h2load nghttp2/1.52.0\r\nx-request-id: 6f1c2a34-8f0e-4b7a-9c1d-2e3f4a5b6c7d\r\n\r\n';
const RESPONSE =
  'HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 3\r\nDate: Fri, 04 Dec 2026 16:20:15 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=600\r\n\r\nabc';

const kind = values.kind === 'request' ? 'request' : 'response';
const warm = Number(values.warm);
const messages = Number(values.messages);

if (values.child !== undefined) await child(values.child);
else await parent();

/** Under valgrind: parse, tell the parent, wait, parse the counted messages, tell, wait. */
async function child(dir: string): Promise<void> {
  const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'proxy', 'http');
  const { Http1Parser } = await import(path.join(dist, 'h1', 'parser.js'));
  const { endToEndMarked, DropNames, MESH_HEADERS } = await import(path.join(dist, 'headers.js'));
  const drop = new DropNames(MESH_HEADERS);
  const filter = values.filter;
  let fields = 0;
  const parser = new Http1Parser(
    kind,
    {
      onHead: (head: { headers: string[]; marks: number }) => void (fields += filter ? endToEndMarked(head.headers, head.marks, drop).length : head.headers.length),
      onBody: () => {},
      onMessageEnd: () => {},
      onError: (err: Error) => {
        throw err;
      },
    },
    { maxHeadBytes: 65536, maxHeaders: 100 },
  );
  const bytes = Buffer.from(kind === 'request' ? REQUEST : RESPONSE, 'latin1');
  const one =
    kind === 'request'
      ? () => parser.execute(bytes)
      : () => {
          parser.expect('GET');
          parser.execute(bytes);
        };
  const signal = (name: string) => writeFileSync(path.join(dir, name), String(fields));
  const until = (name: string) =>
    new Promise<void>((resolve) => {
      const poll = () => (existsSync(path.join(dir, name)) ? resolve() : setTimeout(poll, 20));
      poll();
    });
  for (let i = 0; i < warm; i++) one();
  signal('warm');
  await until('count');
  for (let i = 0; i < messages; i++) one();
  signal('counted');
  await until('exit');
}

async function parent(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parser-count-'));
  try {
    const self = fileURLToPath(import.meta.url);
    const args = ['--tool=callgrind', `--callgrind-out-file=${path.join(dir, 'callgrind.out.%p')}`, '--dump-line=no', process.execPath, '--perf-basic-prof', self, '--child', dir, '--kind', kind, '--warm', String(warm), '--messages', String(messages)];
    if (values.filter) args.push('--filter');
    // In the temporary directory: whatever the child leaves in its working directory goes with it.
    const proc = spawn('valgrind', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    let exitCode: number | undefined;
    const exited = new Promise<number>((resolve) => proc.on('exit', (code) => resolve((exitCode = code ?? 1))));
    const ended = () => exitCode;
    const pid = proc.pid!;
    await waitFor(dir, 'warm', ended, () => stderr);
    await control('-z', pid);
    writeFileSync(path.join(dir, 'count'), '');
    await waitFor(dir, 'counted', ended, () => stderr);
    await control('-d', pid);
    writeFileSync(path.join(dir, 'exit'), '');
    await exited;
    const dump = readdirSync(dir).find((f) => f === `callgrind.out.${pid}.1`);
    if (dump === undefined) throw new Error('callgrind wrote no dump of the counted messages');
    const { self: costs } = readCosts(readFileSync(path.join(dir, dump), 'utf8'), readPerfMap(pid));
    rmSync(perfMapPath(pid), { force: true });
    const per = (ir: number) => String(Math.round(ir / messages)).padStart(8);
    let total = 0;
    for (const ir of costs.values()) total += ir;
    const compiling = grouped(costs).get('V8 compilers') ?? 0;
    console.log(`HTTP/1.1 ${kind}${values.filter ? ' and the hop-by-hop filter' : ''}: ${per(total).trim()} instructions per message (${messages} counted after ${warm})`);
    // V8's optimising compilers run on other threads whenever they like: their share says how settled the code was, not what parsing costs.
    console.log(`without V8's compilers: ${per(total - compiling).trim()}`);
    console.log('\nby group:');
    for (const [name, ir] of largest(grouped(costs), 12)) console.log(`${per(ir)}  ${name}`);
    console.log('\nby function:');
    for (const [name, ir] of largest(costs, Number(values.top))) console.log(`${per(ir)}  ${name.replace(/file:\/\/\S*\/dist\//, '').slice(0, 140)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Polls for the child's file `name`; fails if the child has ended first. */
async function waitFor(dir: string, name: string, ended: () => number | undefined, stderr: () => string): Promise<void> {
  while (!existsSync(path.join(dir, name))) {
    const code = ended();
    if (code !== undefined) throw new Error(`the counted process ended (${code}) before '${name}': ${stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function control(option: string, pid: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn('callgrind_control', [option, String(pid)], { stdio: 'ignore' });
    proc.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`callgrind_control ${option} ${pid} exited ${code}`))));
  });
}
