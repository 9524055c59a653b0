import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { MeshletError } from '../errors.ts';
import { INIT_ENV_VARIABLES } from '../iptables/options.ts';
import { closest, didYouMean } from '../suggest.ts';
import { otelSettings } from './otel-env.ts';
import { configSchema, showValue, type Config } from './schema.ts';

type Tree = Record<string, unknown>;
type Path = readonly (string | number)[];

export interface ConfigSources {
  /** Path of a YAML file; its fields override the defaults. */
  file?: string | undefined;
  /** Environment; MESHLET_<PATH> variables override the file. */
  env?: NodeJS.ProcessEnv;
}

/**
 * MESHLET_* variables that are not configuration fields but are read elsewhere, so a
 * pod may set them for the proxy too: the config file's path, and `meshlet init`'s flags
 * (an init container and a sidecar often share one set of variables).
 */
const OTHER_VARIABLES: ReadonlySet<string> = new Set(['MESHLET_CONFIG', ...INIT_ENV_VARIABLES]);

/**
 * Defaults ← YAML file ← OTEL_* env (tracing) ← MESHLET_* env. Throws one MeshletError with one line per
 * problem, each naming the field (or variable), the bad value, what is accepted, and
 * where the value came from.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const file = sources.file ? readYaml(sources.file) : undefined;
  const env = sources.env ?? {};
  const { tree, origins, problems } = applyEnv(file?.tree ?? {}, env);
  problems.push(...unknownVariables(env));

  // Where a value came from: the variable that set it (or a subtree holding it), else
  // the file (with the line, when the path is in it), else the defaults.
  const where = (path: Path): string => {
    for (let n = path.length; n > 0; n--) {
      const origin = origins.get(path.slice(0, n).join('.'));
      if (origin !== undefined) return `from ${origin}`;
    }
    if (file) {
      for (let n = path.length; n > 0; n--) {
        const line = file.lineOf(path.slice(0, n));
        if (line !== undefined) return `in ${file.name}, line ${line}`;
      }
    }
    return 'by default';
  };

  const parsed = configSchema.safeParse(tree, { reportInput: true });
  if (!parsed.success) throw configError([...problems, ...parsed.error.issues.flatMap((issue) => describeIssue(issue, where))]);
  problems.push(...portClashes(parsed.data, where), ...drainOrder(parsed.data, where));
  if (problems.length > 0) throw configError(problems);
  return parsed.data;
}

function configError(problems: string[]): MeshletError {
  return new MeshletError('MESHLET_ERR_CONFIG', problems.join('\n'));
}

interface YamlFile {
  readonly name: string;
  readonly tree: Tree;
  /** The line of the key or item at `path`, when the file has it. */
  readonly lineOf: (path: Path) => number | undefined;
}

function readYaml(file: string): YamlFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_CONFIG', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = syntaxError(doc, lines);
  if (syntax !== undefined) throw new MeshletError('MESHLET_ERR_CONFIG', `config file ${file}: ${syntax}`);
  const value: unknown = doc.toJS();
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) {
    throw new MeshletError('MESHLET_ERR_CONFIG', `config file ${file} must hold a mapping of fields at the top level`);
  }
  const lineOf = (path: Path): number | undefined => {
    let node: unknown = doc.contents;
    let start: number | undefined;
    for (const key of path) {
      if (YAML.isMap(node)) {
        const pair = node.items.find((p) => YAML.isScalar(p.key) && String(p.key.value) === String(key));
        start = YAML.isNode(pair?.key) ? pair.key.range?.[0] : undefined;
        node = pair?.value;
      } else if (YAML.isSeq(node)) {
        node = node.items[Number(key)];
        start = YAML.isNode(node) ? node.range?.[0] : undefined;
      } else {
        return undefined;
      }
      if (start === undefined) return undefined;
    }
    return start === undefined ? undefined : lines.linePos(start).line;
  };
  return { name: file, tree: (value ?? {}) as Tree, lineOf };
}

/** "YAML syntax error at line L, column C: why" for the first error of a document, in one line. */
function syntaxError(doc: YAML.Document, lines: YAML.LineCounter): string | undefined {
  // An unclosed [ or { is reported several ways at once; "must end with a ]" says it best.
  const error = doc.errors.find((e) => e.code === 'MISSING_CHAR') ?? doc.errors[0];
  if (error === undefined) return undefined;
  const { line, col } = lines.linePos(error.pos[0]);
  return `YAML syntax error at line ${line}, column ${col}: ${error.message.split('\n')[0]}`;
}

interface Leaf {
  readonly path: string[];
  /** A list or a map: its variable holds YAML, and YAML that does not parse is an error. */
  readonly structured: boolean;
}

/** The schema under default/prefault/optional wrappers and transforms. */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = s.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    const inner = def.type === 'pipe' ? def.in : def.innerType;
    if (!inner) return s;
    s = inner;
  }
}

function leaves(): Map<string, Leaf> {
  const out = new Map<string, Leaf>();
  const walk = (schema: z.ZodType, path: string[]) => {
    const s = unwrap(schema);
    if (s instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(s.shape)) walk(child as z.ZodType, [...path, key]);
    } else {
      out.set(envName(path), { path, structured: s instanceof z.ZodArray || s instanceof z.ZodRecord });
    }
  };
  walk(configSchema, []);
  return out;
}

/** Every leaf path of the schema with the env variable that sets it: outbound.connectTimeout ↔ MESHLET_OUTBOUND_CONNECT_TIMEOUT. */
export function envVariables(): Map<string, string[]> {
  return new Map([...leaves()].map(([name, leaf]) => [name, leaf.path]));
}

function envName(path: string[]): string {
  return `MESHLET_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function applyEnv(base: Tree, env: NodeJS.ProcessEnv): { tree: Tree; origins: Map<string, string>; problems: string[] } {
  const tree: Tree = structuredClone(base);
  const origins = new Map<string, string>();
  const otel = otelSettings(env);
  const problems: string[] = otel.problems;
  for (const { path, value, variable } of otel.settings) {
    setAt(tree, path, value);
    origins.set(path.join('.'), variable);
  }
  for (const [name, { path, structured }] of leaves()) {
    const raw = env[name];
    if (raw === undefined) continue;
    const value = structured ? readYamlValue(raw) : { value: readScalar(raw) };
    if ('syntax' in value) {
      problems.push(`${path.join('.')}: ${value.syntax} (from ${name})`);
      continue;
    }
    setAt(tree, path, value.value);
    origins.set(path.join('.'), name);
  }
  return { tree, origins, problems };
}

function setAt(tree: Tree, path: readonly string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Tree;
  }
  node[path.at(-1)!] = value;
}

/** A scalar as YAML reads it, so "15001" is a number and "1s" text, as in the file. */
function readScalar(raw: string): unknown {
  try {
    return YAML.parse(raw) ?? raw;
  } catch {
    return raw; // not YAML (e.g. "*"): the schema says whether a plain string will do
  }
}

/** A list or map given as YAML (`[{cidrs: [10.0.0.0/8]}]`), or the syntax error in it. */
function readYamlValue(raw: string): { value: unknown } | { syntax: string } {
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(raw, { lineCounter: lines, prettyErrors: false });
  const syntax = syntaxError(doc, lines);
  if (syntax !== undefined) return { syntax: syntax.replace(/^YAML syntax error at (line \d+, column \d+)/, 'YAML syntax error at $1 of the value') };
  return { value: doc.toJS() ?? raw };
}

/** MESHLET_* variables that name no field, each with the closest one when there is a likely typo. */
function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const fields = leaves();
  const known = [...fields.keys(), ...OTHER_VARIABLES];
  return Object.keys(env)
    .filter((name) => name.startsWith('MESHLET_') && !fields.has(name) && !OTHER_VARIABLES.has(name))
    .sort()
    .map((name) => {
      const suggestion = closest(name, known);
      const field = suggestion === undefined ? undefined : fields.get(suggestion);
      const hint = suggestion === undefined ? '' : `; did you mean ${suggestion}${field ? ` (${field.path.join('.')})` : ''}?`;
      return `${name}: names no configuration field${hint || ' (docs/proxy.md lists them)'}`;
    });
}

/** Listeners on the same port, or on the admin port. */
function portClashes(config: Config, where: (path: Path) => string): string[] {
  const listeners: Array<[string, number]> = [
    ['outbound.port', config.outbound.port],
    ['inbound.port', config.inbound.port],
    ['health.port', config.health.port],
    ['admin.port', config.admin.port],
  ];
  const origin = (field: string) => `${field} ${where(field.split('.'))}`;
  const problems: string[] = [];
  listeners.forEach(([field, port], i) => {
    for (const [other, otherPort] of listeners.slice(i + 1)) {
      if (port !== otherPort) continue;
      if (other === 'admin.port') {
        problems.push(`${field}: ${port} is the admin port, reserved for the proxy's admin server; choose another port (${where(field.split('.'))})`);
      } else {
        problems.push(`${field} and ${other} are both ${port}; each of the proxy's listeners needs its own port (${origin(field)}, ${origin(other)})`);
      }
    }
  });
  return problems;
}

/** The drain delay is a part of the drain, so it cannot outlast the drain's timeout. */
function drainOrder(config: Config, where: (path: Path) => string): string[] {
  const { delay, timeout } = config.drain;
  if (delay <= timeout) return [];
  return [`drain.delay: ${delay} ms is longer than drain.timeout (${timeout} ms), which ends the whole drain; shorten the delay or lengthen the timeout (${where(['drain', 'delay'])})`];
}

/** The names a schema position accepts, for "did you mean". */
function fieldsAt(path: Path): string[] {
  let s: z.ZodType | undefined = configSchema;
  for (const key of path) {
    const u: z.ZodType = unwrap(s);
    if (u instanceof z.ZodObject) s = (u.shape as Record<string, z.ZodType>)[String(key)];
    else if (u instanceof z.ZodArray) s = u.element as z.ZodType;
    else if (u instanceof z.ZodRecord) s = u.valueType as z.ZodType;
    else return [];
    if (s === undefined) return [];
  }
  const u = unwrap(s);
  return u instanceof z.ZodObject ? Object.keys(u.shape) : [];
}

const TYPE_NAMES: Record<string, string> = {
  string: 'text',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list ([a, b])',
  object: 'a mapping ({key: value})',
  record: 'a mapping ({key: value})',
};

function describeIssue(issue: z.core.$ZodIssue, where: (path: Path) => string): string[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const field = path.join('.') || '(top level)';
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const keyPath = [...path, key];
        return `${keyPath.join('.')}: unknown field${didYouMean(key, fieldsAt(path))} (${where(keyPath)})`;
      });
    case 'invalid_value':
      return [`${field}: ${showValue(issue.input)} is not one of ${issue.values.map(String).join(', ')} (${where(path)})`];
    case 'invalid_type': {
      // zod's own messages start "Invalid input"; the schema's (ports, durations) say more.
      if (!issue.message.startsWith('Invalid input')) return [`${field}: ${issue.message} (${where(path)})`];
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return [`${field}: missing; expected ${expected} (${where(path)})`];
      return [`${field}: expected ${expected}, got ${showValue(issue.input)} (${where(path)})`];
    }
    case 'invalid_key':
      return issue.issues.map((inner) => `${field}: ${inner.message} (${where(path)})`);
    case 'too_small':
      if (issue.origin === 'array') return [`${field}: needs at least ${issue.minimum} ${issue.minimum === 1 ? 'entry' : 'entries'} (${where(path)})`];
      if (issue.origin === 'string') return [`${field}: must not be empty (${where(path)})`];
      return [`${field}: ${issue.message} (${where(path)})`];
    default:
      return [`${field}: ${issue.message} (${where(path)})`];
  }
}
