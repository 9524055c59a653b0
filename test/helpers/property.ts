import type { Test } from 'tap';

/**
 * For the body of a fast-check property: whether `found` and `wanted` are alike (as JSON);
 * when not, they are reported once through `t.same`, with `label` (the generated input),
 * and the property fails. Asserting with t.same on every run would add an assertion per
 * generated case.
 */
export function agrees(t: Test, found: unknown, wanted: unknown, label: string): boolean {
  if (JSON.stringify(found) === JSON.stringify(wanted)) return true;
  t.same(found, wanted, label);
  return false;
}
