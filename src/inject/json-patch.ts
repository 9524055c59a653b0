// JSON Patch (RFC 6902), the three operations injection needs: the webhook answers
// with them, and `meshlet inject` applies the same ones to JSON documents here and to
// YAML documents in yaml-patch.ts. Paths are JSON Pointers (RFC 6901).

export type Operation =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

/** `/spec/template` + ['metadata', 'annotations', 'prometheus.io/port'] → a pointer, with ~ and / escaped. */
export function pointer(base: string, ...tokens: ReadonlyArray<string | number>): string {
  return base + tokens.map((t) => `/${String(t).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** The reference tokens of a pointer, unescaped. */
export function tokens(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(`'${path}' is not a JSON pointer (it must start with /)`);
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

export class PatchError extends Error {
  override name = 'PatchError';
}

/** Operations with every path moved under `base` (a pod template inside a Deployment, a List item). */
export function rebase(base: string, ops: readonly Operation[]): Operation[] {
  return ops.map((o) => ({ ...o, path: base + o.path }));
}

type Container = Record<string, unknown> | unknown[];

function isContainer(value: unknown): value is Container {
  return typeof value === 'object' && value !== null;
}

/** Array index as RFC 6902 reads it: digits without leading zeros, `-` (append) where allowed. */
function arrayIndex(token: string, length: number, appending: boolean): number {
  if (token === '-' && appending) return length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(`'${token}' is not an array index`);
  const index = Number(token);
  if (index > (appending ? length : length - 1)) throw new PatchError(`index ${index} is out of bounds (length ${length})`);
  return index;
}

/**
 * Applies `ops` in order to a deep copy of `document` and returns it; throws PatchError
 * (naming the operation) when one does not apply, as RFC 6902 requires: the whole patch
 * or nothing.
 */
export function applyPatch<T>(document: T, ops: readonly Operation[]): T {
  let root: unknown = structuredClone(document);
  for (const [i, o] of ops.entries()) {
    try {
      root = applyOne(root, o);
    } catch (err) {
      const why = err instanceof PatchError ? err.message : String(err);
      throw new PatchError(`operation ${i} (${o.op} ${o.path}): ${why}`);
    }
  }
  return root as T;
}

function applyOne(root: unknown, o: Operation): unknown {
  const path = tokens(o.path);
  if (path.length === 0) {
    if (o.op === 'remove') throw new PatchError('cannot remove the whole document');
    return structuredClone(o.value);
  }
  let parent: unknown = root;
  for (const token of path.slice(0, -1)) {
    if (!isContainer(parent)) throw new PatchError(`'${token}': the parent is not an object or array`);
    parent = Array.isArray(parent) ? parent[arrayIndex(token, parent.length, false)] : Object.hasOwn(parent, token) ? parent[token] : undefined;
    if (parent === undefined) throw new PatchError(`'${token}' does not exist`);
  }
  const last = path.at(-1)!;
  if (!isContainer(parent)) throw new PatchError('the parent is not an object or array');
  if (Array.isArray(parent)) {
    const index = arrayIndex(last, parent.length, o.op === 'add');
    if (o.op === 'add') parent.splice(index, 0, structuredClone(o.value));
    else if (o.op === 'replace') parent[index] = structuredClone(o.value);
    else parent.splice(index, 1);
    return root;
  }
  if (o.op !== 'add' && !Object.hasOwn(parent, last)) throw new PatchError(`'${last}' does not exist`);
  if (o.op === 'remove') delete parent[last];
  else parent[last] = structuredClone(o.value);
  return root;
}
