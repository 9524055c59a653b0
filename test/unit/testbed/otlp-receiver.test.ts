import { SpanKind } from '@opentelemetry/api';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import fc from 'fast-check';
import t from 'tap';
import { decodeJsonRequest, decodeProtobufRequest, fields } from '../../../src/testbed/otlp-receiver.ts';

// The test receiver's decoders, against the SDK's own serializers: the same spans
// serialized as OTLP protobuf and as OTLP JSON decode to the same thing; bytes that are
// not a request are an Error, never a hang or another kind of throw.

const attribute = fc.oneof(fc.string({ maxLength: 20 }), fc.boolean(), fc.integer({ min: -1e9, max: 1e9 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }));
const spanSpec = fc.record({
  name: fc.string({ minLength: 1, maxLength: 20 }),
  kind: fc.constantFrom(SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL),
  attributes: fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), attribute, { maxKeys: 6 }),
  error: fc.boolean(),
});

t.test('protobuf and JSON decode to the same spans', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(spanSpec, { minLength: 1, maxLength: 4 }), async (specs) => {
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const tracer = provider.getTracer('test');
      for (const spec of specs) {
        const span = tracer.startSpan(spec.name, { kind: spec.kind, attributes: spec.attributes });
        if (spec.error) span.setStatus({ code: 2, message: 'bad' });
        span.end();
      }
      const spans = exporter.getFinishedSpans();
      const proto = decodeProtobufRequest(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!));
      const json = decodeJsonRequest(JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)!).toString()) as Parameters<typeof decodeJsonRequest>[0]);
      const plain = (list: typeof proto) => JSON.stringify(list.map(({ encoding: _, ...rest }) => rest), (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      return proto.length === specs.length && plain(proto) === plain(json) && proto.every((s, i) => s.name === specs[i]!.name);
    }),
    { numRuns: 200 },
  );
});

t.test('any bytes: spans or an Error', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        return Array.isArray(decodeProtobufRequest(Buffer.from(bytes)));
      } catch (err) {
        return err instanceof Error;
      }
    }),
    { numRuns: 3000 },
  );
});

t.test('bad input corpus', async (t) => {
  const corpus: Array<[string, number[]]> = [
    ['truncated varint', [0x08, 0x80]],
    ['field number 0', [0x00, 0x01]],
    ['length past the end', [0x0a, 0x05, 0x01]],
    ['truncated fixed64', [0x09, 0x01, 0x02]],
    ['truncated fixed32', [0x0d, 0x01]],
    ['group wire type', [0x0b]],
    ['varint of 11 bytes', [0x08, ...Array(10).fill(0xff), 0x01]],
  ];
  for (const [what, bytes] of corpus) t.throws(() => fields(Buffer.from(bytes)), Error, what);
  t.same(decodeProtobufRequest(Buffer.alloc(0)), [], 'an empty request holds no spans');
});
