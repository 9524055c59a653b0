import fc from 'fast-check';
import t from 'tap';
import { b3TraceId, traceIdOf, traceparentTraceId } from '../../../src/telemetry/trace-context.ts';

// The trace id the access log takes from a request: W3C traceparent, else B3.

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const nonZero = (n: number) => hex(n).filter((s) => !/^0+$/.test(s));

t.test('a valid traceparent gives its trace id', async () => {
  fc.assert(
    fc.property(nonZero(32), nonZero(16), hex(2), (traceId, parentId, flags) => {
      return traceparentTraceId(`00-${traceId}-${parentId}-${flags}`) === traceId;
    }),
  );
});

t.test('a later version may append fields; version 00 may not', async (t) => {
  const base = '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  t.equal(traceparentTraceId(`01-${base}-whatever`), '4bf92f3577b34da6a3ce929d0e0e4736');
  t.equal(traceparentTraceId(`00-${base}-whatever`), undefined);
  t.equal(traceparentTraceId(`ff-${base}`), undefined, 'version ff is invalid');
  t.equal(traceparentTraceId(`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`), undefined, 'an all-zero trace id is invalid');
  t.equal(traceparentTraceId(`00-${'4BF92F3577B34DA6A3CE929D0E0E4736'}-00f067aa0ba902b7-01`), undefined, 'upper case is invalid');
});

t.test('any string: undefined or 32 lower-case hex digits, never a throw', async () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      const id = traceparentTraceId(s);
      return id === undefined || /^[0-9a-f]{32}$/.test(id);
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      const id = b3TraceId(s);
      return id === undefined || /^([0-9a-f]{16}|[0-9a-f]{32})$/.test(id);
    }),
  );
});

t.test('from headers: traceparent first, then b3, then x-b3-traceid', async (t) => {
  const w3c = '4bf92f3577b34da6a3ce929d0e0e4736';
  t.equal(traceIdOf(['Traceparent', `00-${w3c}-00f067aa0ba902b7-01`, 'b3', '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1']), w3c);
  t.equal(traceIdOf(['b3', '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90']), '80f198ee56343ba864fe8b2a57d3eff7');
  t.equal(traceIdOf(['X-B3-TraceId', '463AC35C9F6413AD']), '463ac35c9f6413ad', '64-bit B3 ids, any case');
  t.equal(traceIdOf(['b3', '0']), undefined, 'a sampling-only b3 carries no id');
  t.equal(traceIdOf([]), undefined);
});
