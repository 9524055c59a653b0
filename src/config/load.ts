import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { MeshletError } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

type Tree = Record<string, unknown>;

export interface ConfigSources {
  /** Path of a YAML file; its fields override the defaults. */
  file?: string | undefined;
  /** Environment; MESHLET_<PATH> variables override the file. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Defaults ← YAML file ← MESHLET_* env. Throws one MeshletError whose message names
 * every bad field, where it came from, and what is wrong with it.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const fromFile = sources.file ? readYaml(sources.file) : {};
  const { tree, origins } = applyEnv(fromFile, sources.env ?? {});
  const parsed = configSchema.safeParse(tree);
  if (parsed.success) return parsed.data;
  // A variable sets a whole subtree (a list or map as YAML): the error may be deeper in it.
  const origin = (path: string): string | undefined => {
    for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') if (origins.has(p)) return origins.get(p);
    return undefined;
  };
  const where = (path: string) => origin(path) ?? (sources.file ? `in ${sources.file}` : 'in the defaults');
  const lines = parsed.error.issues.flatMap((issue) => describeIssue(issue, where));
  throw new MeshletError('MESHLET_ERR_CONFIG', `invalid configuration:\n  ${lines.join('\n  ')}`);
}

function readYaml(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_CONFIG', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new MeshletError('MESHLET_ERR_CONFIG', `config file ${file} is not valid YAML: ${doc.errors[0]!.message}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new MeshletError('MESHLET_ERR_CONFIG', `config file ${file} must hold a mapping of fields at the top level`);
  }
  return value as Tree;
}

/** Every leaf path of the schema with the env variable that sets it: outbound.connectTimeout ↔ MESHLET_OUTBOUND_CONNECT_TIMEOUT. */
export function envVariables(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (schema: z.ZodType, path: string[]) => {
    const shape = objectShape(schema);
    if (!shape) {
      out.set(envName(path), path);
      return;
    }
    for (const [key, child] of Object.entries(shape)) walk(child as z.ZodType, [...path, key]);
  };
  walk(configSchema, []);
  return out;
}

function objectShape(schema: z.ZodType): Record<string, unknown> | undefined {
  let s: z.ZodType = schema;
  // Unwrap default/prefault/optional wrappers down to the object, if any.
  for (;;) {
    if (s instanceof z.ZodObject) return s.shape as Record<string, unknown>;
    const inner = (s as unknown as { def: { innerType?: z.ZodType } }).def.innerType;
    if (!inner) return undefined;
    s = inner;
  }
}

function envName(path: string[]): string {
  return `MESHLET_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

function applyEnv(base: Tree, env: NodeJS.ProcessEnv): { tree: Tree; origins: Map<string, string> } {
  const tree: Tree = structuredClone(base);
  const origins = new Map<string, string>();
  for (const [name, path] of envVariables()) {
    const raw = env[name];
    if (raw === undefined) continue;
    let node = tree;
    for (const key of path.slice(0, -1)) {
      if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
      node = node[key] as Tree;
    }
    // Read the value as a YAML scalar, so "15001" is a number and "1s" a string, as in the file.
    node[path.at(-1)!] = readScalar(raw);
    origins.set(path.join('.'), `from ${name}`);
  }
  return { tree, origins };
}

function readScalar(raw: string): unknown {
  try {
    return YAML.parse(raw) ?? raw;
  } catch {
    return raw; // not YAML (e.g. "*"): the schema says whether a plain string will do
  }
}

function describeIssue(issue: z.core.$ZodIssue, where: (path: string) => string): string[] {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const field = path ? `${path}.${key}` : key;
      return `${field}: unknown field (${where(field)})`;
    });
  }
  return [`${path || '(top level)'}: ${issue.message} (${where(path)})`];
}
