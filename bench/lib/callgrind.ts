// Reading a callgrind dump of a Node.js process: instructions by function (self cost), with
// V8's generated code named from the process's perf map (node --perf-basic-prof), and
// grouped into what a reader of the proxy thinks in: each of meshlet's modules, Node's own
// JavaScript, V8's builtins, runtime, compiler and garbage collector, malloc, and so on.
import { existsSync, readFileSync } from 'node:fs';

/** A dump's instructions: each function's own (self), and what each function's callers spent in it (inclusive, by caller). */
export interface Costs {
  self: Map<string, number>;
  callers: Map<string, Map<string, number>>;
}

export function readCosts(dumpText: string, perfMapText = ''): Costs {
  const jit = parsePerfMap(perfMapText);
  const names = new Map<string, string>();
  const self = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  let current = '';
  let callee = '';
  let inCall = false;
  for (const line of dumpText.split('\n')) {
    if (line.startsWith('fn=')) {
      current = jit(compressedName(line.slice(3), names));
      continue;
    }
    if (line.startsWith('cfn=')) {
      callee = jit(compressedName(line.slice(4), names));
      continue;
    }
    if (line.startsWith('calls=')) {
      inCall = true;
      continue;
    }
    const first = line.charCodeAt(0);
    // Cost lines start with a position: a number, or +N / -N / * (relative to the last).
    if (!(first >= 48 && first <= 57) && first !== 43 && first !== 45 && first !== 42) continue;
    const parts = line.trim().split(/\s+/);
    const ir = Number(parts.at(-1));
    if (!Number.isFinite(ir) || parts.length < 2) continue;
    if (inCall) {
      // The line after calls= is the call's inclusive cost, not the caller's own.
      inCall = false;
      let by = callers.get(callee);
      if (!by) callers.set(callee, (by = new Map()));
      by.set(current, (by.get(current) ?? 0) + ir);
      continue;
    }
    self.set(current, (self.get(current) ?? 0) + ir);
  }
  return { self, callers };
}

/** `(id) name` defines an id, `(id)` uses one. */
function compressedName(text: string, names: Map<string, string>): string {
  const m = /^\((\d+)\)(?: (.*))?$/.exec(text);
  if (!m) return text;
  if (m[2] !== undefined) names.set(m[1]!, m[2]);
  return names.get(m[1]!) ?? text;
}

/** A resolver from callgrind's `0x…` names of generated code to the perf map's names. */
function parsePerfMap(text: string): (name: string) => string {
  const starts: number[] = [];
  const ends: number[] = [];
  const labels: string[] = [];
  const entries = text
    .split('\n')
    .map((l) => /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ start: parseInt(m[1]!, 16), size: parseInt(m[2]!, 16), label: m[3]! }))
    .sort((a, b) => a.start - b.start);
  for (const e of entries) {
    starts.push(e.start);
    ends.push(e.start + e.size);
    labels.push(e.label);
  }
  return (name) => {
    const m = /^0x([0-9a-f]+)/.exec(name);
    if (!m) return name;
    const address = parseInt(m[1]!, 16);
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]! <= address) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Code is moved and freed as V8 works: the latest entry that covers the address.
    return found >= 0 && address < ends[found]! ? labels[found]! : 'generated code (unnamed)';
  };
}

/** Where node --perf-basic-prof writes process `pid`'s map of generated code (V8 always puts it in /tmp). */
export function perfMapPath(pid: number): string {
  return `/tmp/perf-${pid}.map`;
}

export function readPerfMap(pid: number): string {
  const file = perfMapPath(pid);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** The group a function belongs to: a meshlet module (its path under dist/), Node's JavaScript, or a part of the runtime. */
export function groupOf(name: string): string {
  const file = /(?:file:\/\/)?\S*\/dist\/(\S+?\.js)(?::\d+)*$/.exec(name);
  if (file) return `meshlet ${file[1]}`;
  // Node's own JavaScript (`JS:*'onStreamRead node:internal/...`); its C++ (`int node::StreamBase::...(node::encoding)`) is further down.
  if (/^(?:JS|LazyCompile):.* node:\S+/.test(name)) return `node ${/ node:(\S+?)(?::\d+)*$/.exec(name)?.[1] ?? 'js'}`;
  if (/node_modules\//.test(name)) return `package ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(name)?.[1]}`;
  if (name.startsWith('Builtins_') || /^(?:JS|Builtin|BytecodeHandler):/.test(name)) return 'V8 builtins and interpreter';
  if (/^(?:JS|LazyCompile):/.test(name)) return 'JavaScript (other)';
  if (name.startsWith('RegExp:')) return 'V8 regular expressions';
  if (/v8::internal::(?:Scavenger|Heap|MarkCompact|MinorMark|Sweeper|GC|Mark|Evacuat|.*ObjectCache|Root\w*Visitor|Marking|ConcurrentMarking|MemoryAllocator|PagedSpace|NewSpace|SemiSpace)/.test(name)) return 'V8 garbage collector';
  if (/v8::internal::(?:compiler|maglev|baseline|Compiler|interpreter::BytecodeGenerator|Parser|Scanner|Zone|AstValue|turboshaft|wasm)|Turbofan|Maglev/.test(name)) return 'V8 compilers';
  if (/v8::internal::Runtime_|v8::internal::.*IC|v8::internal::Builtin_/.test(name)) return 'V8 runtime (slow paths)';
  if (/^v8::|v8::internal/.test(name)) return 'V8 other (API, objects)';
  if (/(?:^|\s)node::|uv_|^uv__/.test(name)) return 'Node native (bindings, libuv)';
  if (/malloc|free|_int_|memcpy|memmove|memset|memcmp|strlen|__libc|operator new|operator delete/.test(name)) return 'libc (malloc, memcpy)';
  if (/^generated code/.test(name)) return 'generated code (unnamed)';
  return 'other native';
}

/** The `top` largest of `costs`, as [name, instructions]. */
export function largest(costs: Map<string, number>, top: number): [string, number][] {
  return [...costs].sort((a, b) => b[1] - a[1]).slice(0, top);
}

export function grouped(costs: Map<string, number>): Map<string, number> {
  const groups = new Map<string, number>();
  for (const [name, ir] of costs) {
    const g = groupOf(name);
    groups.set(g, (groups.get(g) ?? 0) + ir);
  }
  return groups;
}
