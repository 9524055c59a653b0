import jsonpatch, { type AddOperation, type RemoveOperation, type ReplaceOperation } from 'fast-json-patch';

// Injection is computed as a JSON Patch (RFC 6902) of three operations: the webhook
// answers with it, and `meshlet inject` applies it to JSON documents with fast-json-patch
// (stream.ts) and to YAML node trees (yaml-patch.ts, which has fast-json-patch check the
// patch against the document's values first). The operations are written by hand, not
// diffed with fast-json-patch's compare(): it diffs arrays index by index, so "insert
// meshlet-init before the app's init container `setup`" comes out as replacing setup's
// name and image with meshlet-init's and adding setup again after it — which in YAML
// moves the app's comments onto meshlet's container, and is no patch to read in a review.

export type Operation = AddOperation<unknown> | ReplaceOperation<unknown> | RemoveOperation;

/** `/spec/template` + ['metadata', 'annotations', 'prometheus.io/port'] → a pointer (RFC 6901), with ~ and / escaped. */
export function pointer(base: string, ...tokens: ReadonlyArray<string | number>): string {
  return base + tokens.map((t) => `/${jsonpatch.escapePathComponent(String(t))}`).join('');
}

/** Operations with every path moved under `base` (a pod template inside a Deployment, a List item). */
export function rebase(base: string, ops: readonly Operation[]): Operation[] {
  return ops.map((o) => ({ ...o, path: base + o.path }));
}

/** `ops` applied to a copy of `document` by fast-json-patch, each operation checked first: all of them apply or it throws a JsonPatchError. */
export function applyPatch<T>(document: T, ops: readonly Operation[]): T {
  return jsonpatch.applyPatch(document, ops as Operation[], true, false).newDocument;
}
