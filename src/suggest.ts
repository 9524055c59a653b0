// "Did you mean ...?" for names typed by people: options, subcommands, config fields,
// MESHLET_* variables. Optimal-string-alignment distance (Levenshtein plus swapping two
// neighbours, the commonest typo: IDEL for IDLE), compared case-insensitively and
// ignoring '_' and '-', so idle_timeout finds idleTimeout.

/** Edits (insert, delete, substitute, swap two adjacent characters) from `a` to `b`. */
export function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      current.push(d);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

const normalize = (name: string) => name.toLowerCase().replace(/[-_]/g, '');

/**
 * The candidate closest to `name`, if it is close enough to be a likely typo: at most a
 * third of the name's letters wrong (at least one). Ties go to the earlier candidate.
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const wanted = normalize(name);
  const limit = Math.max(1, Math.floor(wanted.length / 3));
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    if (candidate === name) continue;
    const distance = editDistance(wanted, normalize(candidate));
    if (distance <= limit && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

/** `"; did you mean X?"` with the closest candidate, or `""` when none is close. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const suggestion = closest(name, candidates);
  return suggestion === undefined ? '' : `; did you mean ${suggestion}?`;
}
