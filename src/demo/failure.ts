/** A failure the demo explains in one line. */
export class DemoFailure extends Error {
  override name = 'DemoFailure';
}

/** The first non-empty line of some tool's output, for one-line reasons. */
export function firstLine(text: string): string {
  return text.trim().split('\n').find((l) => l.trim() !== '')?.trim() ?? '';
}
