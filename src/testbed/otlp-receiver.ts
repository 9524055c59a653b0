import http from 'node:http';
import type { AddressInfo } from 'node:net';

// A small OTLP/HTTP trace receiver for the tests and the demo: it takes what an
// OpenTelemetry exporter POSTs to /v1/traces, as JSON (http/json) or protobuf
// (http/protobuf), and keeps each span flattened with its resource's attributes. The
// protobuf is read with a minimal decoder of the few messages of
// opentelemetry/proto/collector/trace/v1 that spans need.

export type AttributeValue = string | number | boolean | AttributeValue[] | undefined;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP's SpanKind: 2 SERVER, 3 CLIENT. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttributeValue>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  resource: Record<string, AttributeValue>;
  scope: string;
  /** How it came: the request's Content-Type. */
  encoding: 'json' | 'protobuf';
}

export interface OtlpReceiver {
  readonly port: number;
  readonly spans: ReceivedSpan[];
  /** Called with the spans of each export as it arrives. */
  onSpans?: (spans: ReceivedSpan[]) => void;
  close(): Promise<void>;
}

export async function startOtlpReceiver(options: { host?: string; port?: number } = {}): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const receiver: OtlpReceiver = {
    port: 0,
    spans,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(chunks);
      const type = req.headers['content-type'] ?? '';
      let received: ReceivedSpan[];
      try {
        received = type.startsWith('application/x-protobuf') ? decodeProtobufRequest(body) : decodeJsonRequest(JSON.parse(body.toString('utf8')) as JsonRequest);
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
        return;
      }
      spans.push(...received);
      receiver.onSpans?.(received);
      // An empty ExportTraceServiceResponse: all accepted.
      if (type.startsWith('application/x-protobuf')) res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  (receiver as { port: number }).port = (server.address() as AddressInfo).port;
  return receiver;
}

// ---- OTLP JSON (ids in hex, 64-bit numbers as strings) ----

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonAnyValue[] };
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: JsonKeyValue[];
  status?: { code?: number; message?: string };
}
interface JsonRequest {
  resourceSpans?: Array<{ resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: Array<{ scope?: { name?: string }; spans?: JsonSpan[] }> }>;
}

function jsonValue(v: JsonAnyValue | undefined): AttributeValue {
  if (v === undefined) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(jsonValue);
  return undefined;
}

const jsonAttributes = (list: JsonKeyValue[] | undefined) => Object.fromEntries((list ?? []).map((kv) => [kv.key, jsonValue(kv.value)]));

export function decodeJsonRequest(request: JsonRequest): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((rs) =>
    (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        traceState: s.traceState ?? '',
        name: s.name,
        kind: s.kind,
        startTimeUnixNano: BigInt(s.startTimeUnixNano),
        endTimeUnixNano: BigInt(s.endTimeUnixNano),
        attributes: jsonAttributes(s.attributes),
        status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
        resource: jsonAttributes(rs.resource?.attributes),
        scope: ss.scope?.name ?? '',
        encoding: 'json' as const,
      })),
    ),
  );
}

// ---- OTLP protobuf ----

/** One field of a protobuf message: its number and its value (varint, fixed64/32 as bigint/number, or bytes). */
interface Field {
  n: number;
  varint?: bigint;
  fixed?: bigint;
  bytes?: Buffer;
}

/** The fields of one message, in order; throws on a truncated or malformed buffer. */
export function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('protobuf: truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf: varint too long');
    }
  };
  while (pos < buf.length) {
    const key = varint();
    const n = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (n === 0) throw new Error('protobuf: field number 0');
    if (wire === 0) out.push({ n, varint: varint() });
    else if (wire === 1) {
      if (pos + 8 > buf.length) throw new Error('protobuf: truncated fixed64');
      out.push({ n, fixed: buf.readBigUInt64LE(pos) });
      pos += 8;
    } else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new Error('protobuf: truncated bytes');
      out.push({ n, bytes: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 5) {
      if (pos + 4 > buf.length) throw new Error('protobuf: truncated fixed32');
      out.push({ n, fixed: BigInt(buf.readUInt32LE(pos)) });
      pos += 4;
    } else throw new Error(`protobuf: wire type ${wire} not supported`);
  }
  return out;
}

const text = (f: Field | undefined) => f?.bytes?.toString('utf8') ?? '';
const all = (list: Field[], n: number) => list.filter((f) => f.n === n && f.bytes !== undefined).map((f) => f.bytes!);
const one = (list: Field[], n: number) => list.findLast((f) => f.n === n);

/** AnyValue: string 1, bool 2, int 3, double 4, array 5 (ArrayValue.values 1). */
function protoValue(buf: Buffer): AttributeValue {
  const f = fields(buf);
  const last = f.at(-1);
  if (last === undefined) return undefined;
  switch (last.n) {
    case 1:
      return text(last);
    case 2:
      return last.varint === 1n;
    case 3:
      return Number(BigInt.asIntN(64, last.varint ?? 0n));
    case 4: {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(last.fixed ?? 0n);
      return b.readDoubleLE(0);
    }
    case 5:
      return all(fields(last.bytes ?? Buffer.alloc(0)), 1).map(protoValue);
    default:
      return undefined;
  }
}

/** KeyValue: key 1, value 2. */
function protoAttributes(list: Buffer[]): Record<string, AttributeValue> {
  return Object.fromEntries(list.map((kv) => {
    const f = fields(kv);
    const value = one(f, 2)?.bytes;
    return [text(one(f, 1)), value === undefined ? undefined : protoValue(value)];
  }));
}

/**
 * ExportTraceServiceRequest: resource_spans 1 → ResourceSpans: resource 1 (Resource:
 * attributes 1), scope_spans 2 → ScopeSpans: scope 1 (name 1), spans 2 → Span.
 */
export function decodeProtobufRequest(body: Buffer): ReceivedSpan[] {
  return all(fields(body), 1).flatMap((rsBuf) => {
    const rs = fields(rsBuf);
    const resourceBuf = one(rs, 1)?.bytes;
    const resource = resourceBuf ? protoAttributes(all(fields(resourceBuf), 1)) : {};
    return all(rs, 2).flatMap((ssBuf) => {
      const ss = fields(ssBuf);
      const scopeBuf = one(ss, 1)?.bytes;
      const scope = scopeBuf ? text(one(fields(scopeBuf), 1)) : '';
      return all(ss, 2).map((spanBuf) => protoSpan(spanBuf, resource, scope));
    });
  });
}

/** Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7, end 8, attributes 9, status 15 (message 2, code 3). */
function protoSpan(buf: Buffer, resource: Record<string, AttributeValue>, scope: string): ReceivedSpan {
  const f = fields(buf);
  const hex = (n: number) => one(f, n)?.bytes?.toString('hex') ?? '';
  const statusBuf = one(f, 15)?.bytes;
  const status = statusBuf ? fields(statusBuf) : [];
  return {
    traceId: hex(1),
    spanId: hex(2),
    parentSpanId: hex(4),
    traceState: text(one(f, 3)),
    name: text(one(f, 5)),
    kind: Number(one(f, 6)?.varint ?? 0n),
    startTimeUnixNano: one(f, 7)?.fixed ?? 0n,
    endTimeUnixNano: one(f, 8)?.fixed ?? 0n,
    attributes: protoAttributes(all(f, 9)),
    status: { code: Number(one(status, 3)?.varint ?? 0n), message: text(one(status, 2)) },
    resource,
    scope,
    encoding: 'protobuf',
  };
}
