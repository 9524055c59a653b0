import { ROOT_CONTEXT, trace, TraceFlags, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import t from 'tap';
import { get } from '../../../src/pipeline/headers.ts';
import { B3_MULTI, B3_SINGLE, DEFERRED, NOT_SAMPLED, ratioAccepts, removeTraceHeaders, SAMPLED, TraceScan, validTraceparent, W3C } from '../../../src/telemetry/trace-headers.ts';

// The allocation-free reading of trace headers must agree with the OpenTelemetry
// propagators, which build the context of the requests it lets through, and its ratio test
// with the SDK's TraceIdRatioBasedSampler.

const getter: TextMapGetter<string[]> = { keys: (h) => h.filter((_, i) => i % 2 === 0), get: (h, k) => get(h, k) };
const w3c = new W3CTraceContextPropagator();
const b3 = new B3Propagator();
const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const flags = hex(2);

/** What the propagator reads from `headers`: undefined, or the ids and whether sampled. */
function otel(propagator: W3CTraceContextPropagator | B3Propagator, headers: string[]) {
  const sc = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, headers, getter));
  return sc && { traceId: sc.traceId, sampled: (sc.traceFlags & TraceFlags.SAMPLED) === 1 };
}

function ours(headers: string[], format: number) {
  const scan = new TraceScan();
  scan.scan(headers);
  if (!(scan.formats & format) || scan.parent !== format || scan.idLength === 0) return undefined;
  const id = headers[scan.idAt]!.slice(scan.idStart, scan.idStart + scan.idLength);
  return { traceId: id.padStart(32, '0'), sampled: scan.decision === SAMPLED };
}

t.test('traceparent: valid exactly when the W3C propagator reads it, with the same id and flag', async () => {
  const traceparent = fc.oneof(
    fc.tuple(hex(2), hex(32), hex(16), flags).map(([v, a, b, f]) => `${v}-${a}-${b}-${f}`),
    fc.tuple(hex(32), hex(16), flags, fc.string({ maxLength: 8 })).map(([a, b, f, rest]) => `01-${a}-${b}-${f}${rest}`),
    fc.tuple(fc.constantFrom('00', 'ff', '0g', 'FF'), fc.constantFrom('0'.repeat(32), '4bf92f3577b34da6a3ce929d0e0e4736', '4BF92F3577B34DA6A3CE929D0E0E4736'), fc.constantFrom('0'.repeat(16), '00f067aa0ba902b7'), flags).map((p) => p.join('-')),
    fc.string({ maxLength: 70 }),
    // Dashes one or more places off, the whole still 55 characters: ids of 31 and 17 digits, and the like.
    fc.integer({ min: 28, max: 36 }).chain((n) => fc.tuple(hex(2), hex(n), hex(48 - n), flags).map(([v, a, b, f]) => `${v}-${a}-${b}-${f}`)),
  );
  // The propagator also forgives one space at either end, which an HTTP codec has trimmed
  // already (field values carry no surrounding whitespace); there the scan may find less.
  fc.assert(
    fc.property(traceparent, (value) => {
      const headers = ['traceparent', value];
      const theirs = otel(w3c, headers);
      const mine = ours(headers, W3C);
      if (/^\s|\s$/.test(value)) return mine === undefined || JSON.stringify(theirs) === JSON.stringify(mine);
      return JSON.stringify(theirs) === JSON.stringify(mine) && validTraceparent(value) === (theirs !== undefined);
    }),
    { numRuns: 3000 },
  );
});

t.test('b3 single: the same ids as the B3 propagator; its sampling state, or deferred', async () => {
  // The propagator's pattern is not anchored (it takes `id-id-x` as deferred); the scan
  // holds to the B3 grammar, so on other input it may only find less, never more.
  const agrees = (value: string, exact: boolean) => {
    const headers = ['b3', value];
    const theirs = otel(b3, headers);
    const mine = ours(headers, B3_SINGLE);
    if (mine === undefined) return !exact || theirs === undefined;
    // The propagator reads a deferred state as not sampled; the scan leaves it to the sampler.
    return theirs !== undefined && mine.traceId === theirs.traceId && (theirs.sampled ? mine.sampled : !mine.sampled);
  };
  const grammar = fc
    .tuple(fc.oneof(hex(16), hex(32), fc.constant('0'.repeat(16))), fc.oneof(hex(16), fc.constant('0'.repeat(16))), fc.constantFrom('', '-0', '-1', '-d'), fc.constantFrom('', `-${'1'.repeat(16)}`))
    .map(([a, b, s, p]) => `${a}-${b}${s}${s ? p : ''}`);
  fc.assert(fc.property(grammar, (value) => agrees(value, true)), { numRuns: 3000 });
  fc.assert(fc.property(fc.string({ maxLength: 60 }), (value) => agrees(value, false)), { numRuns: 3000 });
});

t.test('b3 multi: ids, the sampled header (1, true, 0, false) and the debug flag', async (t) => {
  const scan = new TraceScan();
  const at = (headers: string[]) => (scan.scan(headers), { formats: scan.formats, parent: scan.parent, decision: scan.decision });
  const ids = ['X-B3-TraceId', '4bf92f3577b34da6a3ce929d0e0e4736', 'X-B3-SpanId', '00f067aa0ba902b7'];
  t.same(at([...ids, 'X-B3-Sampled', '1']), { formats: B3_MULTI, parent: B3_MULTI, decision: SAMPLED });
  t.same(at([...ids, 'x-b3-sampled', 'false']), { formats: B3_MULTI, parent: B3_MULTI, decision: NOT_SAMPLED });
  t.same(at([...ids, 'x-b3-flags', '1', 'x-b3-sampled', '0']), { formats: B3_MULTI, parent: B3_MULTI, decision: SAMPLED }, 'debug wins');
  t.same(at(ids), { formats: B3_MULTI, parent: B3_MULTI, decision: DEFERRED });
  t.same(at(['X-B3-TraceId', '4bf92f3577b34da6a3ce929d0e0e4736']), { formats: 0, parent: 0, decision: DEFERRED }, 'no span id: no parent');
  t.same(at(['X-B3-TraceId', '4BF92F3577B34DA6A3CE929D0E0E4736', 'X-B3-SpanId', '00f067aa0ba902b7']), { formats: 0, parent: 0, decision: DEFERRED }, 'upper case, as the propagator: no parent');
  const both = at(['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', ...ids, 'b3', '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1']);
  t.same(both, { formats: W3C | B3_SINGLE | B3_MULTI, parent: W3C, decision: NOT_SAMPLED }, 'W3C first; every format noted');
});

t.test('bad input corpus: no parent, no throw', async (t) => {
  const scan = new TraceScan();
  const corpus: string[][] = [
    ['traceparent', ''],
    ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0'],
    ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'],
    ['traceparent', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
    ['traceparent', '00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01'],
    ['traceparent', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['traceparent', '\u0000'.repeat(55)],
    ['b3', ''],
    ['b3', '-'],
    ['b3', '4bf92f3577b34da6a3ce929d0e0e4736'],
    ['b3', '4bf92f3577b34da6a3ce929d0e0e4736-'],
    ['b3', '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b'],
    ['b3', '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-'],
    ['b3', '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-2'],
    ['b3', '0000000000000000-00f067aa0ba902b7-1'],
    ['b3', '1'],
    ['x-b3-traceid', '4bf92f3577b34da6a3ce929d0e0e4736', 'x-b3-spanid', '4bf92f3577b34da6a3ce929d0e0e4736'],
  ];
  for (const headers of corpus) t.equal(scan.scan(headers), false, JSON.stringify(headers));
});

t.test('the ratio test agrees with the SDK sampler on every id and ratio', async () => {
  fc.assert(
    fc.property(fc.oneof(hex(32), hex(16)), fc.double({ min: 0, max: 1, noNaN: true }), (id, ratio) => {
      const sdk = new TraceIdRatioBasedSampler(ratio).shouldSample(ROOT_CONTEXT, id.padStart(32, '0')).decision === SamplingDecision.RECORD_AND_SAMPLED;
      return ratioAccepts(`xx${id}`, 2, id.length, ratio) === sdk || id.padStart(32, '0') === '0'.repeat(32);
    }),
    { numRuns: 3000 },
  );
});

t.test('removeTraceHeaders: every format, any case, others kept in order', async (t) => {
  const headers = ['A', '1', 'TraceParent', 'x', 'tracestate', 'y', 'B', '2', 'B3', 'z', 'X-B3-TraceId', 'a', 'x-b3-spanid', 'b', 'X-B3-ParentSpanId', 'c', 'x-b3-sampled', 'd', 'X-B3-Flags', 'e', 'baggage', 'k=v', 'C', '3'];
  removeTraceHeaders(headers);
  t.same(headers, ['A', '1', 'B', '2', 'baggage', 'k=v', 'C', '3']);
});
