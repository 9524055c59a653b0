// An OTLP/HTTP trace receiver in a pod of the testbed, standing in for an OpenTelemetry
// collector: it prints {"listening": PORT} once it accepts connections, then one line
// {"span": {...}} per span it receives (JSON or protobuf; 64-bit times as strings).
//
//   otlp-receiver-app [--port 4318] [--host ::]
import { parseArgs } from 'node:util';
import { startOtlpReceiver } from '../otlp-receiver.ts';

const { values } = parseArgs({ options: { host: { type: 'string', default: '::' }, port: { type: 'string', default: '4318' } } });
const receiver = await startOtlpReceiver({ host: values.host, port: Number(values.port) });
receiver.onSpans = (spans) => {
  for (const span of spans) console.log(JSON.stringify({ span }, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
};
console.log(JSON.stringify({ listening: receiver.port }));
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void receiver.close());
