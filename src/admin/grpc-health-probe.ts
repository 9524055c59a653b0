import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProbeResult } from './app-probes.ts';

/**
 * grpc.health.v1 (github.com/grpc/grpc-proto, grpc/health/v1/health.proto), only the
 * Check call, as a protobufjs descriptor: the built proxy ships no .proto files.
 */
const HEALTH_V1 = {
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
                Health: { methods: { Check: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse' } } },
              },
            },
          },
        },
      },
    },
  },
};

type HealthClient = grpc.Client & {
  Check(request: { service: string }, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: { status: string }) => void): void;
};

let Health: grpc.ServiceClientConstructor | undefined;

function healthService(): grpc.ServiceClientConstructor {
  if (!Health) {
    const definition = protoLoader.fromJSON(HEALTH_V1 as Parameters<typeof protoLoader.fromJSON>[0], { enums: String, defaults: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
    Health = loaded.grpc.health.v1.Health;
  }
  return Health;
}

/** kubelet's gRPC probe: Health/Check for `service` over h2c; success only when SERVING. */
export function grpcHealthProbe(host: string, port: number, service: string): { check: (timeoutMs: number) => Promise<ProbeResult>; close: () => void } {
  // One channel per probe, reused between runs (a probe every few seconds need not reconnect).
  const client = new (healthService())(`${host}:${port}`, grpc.credentials.createInsecure(), {
    'grpc.primary_user_agent': 'kube-probe/meshlet',
  }) as unknown as HealthClient;
  const check = (timeoutMs: number) =>
    new Promise<ProbeResult>((resolve) => {
      client.Check({ service }, { deadline: Date.now() + timeoutMs }, (err, reply) => {
        if (err) resolve({ ok: false, detail: `gRPC ${grpc.status[err.code] ?? err.code}: ${err.details}` });
        else resolve({ ok: reply?.status === 'SERVING', detail: `gRPC health ${reply?.status ?? 'no status'}` });
      });
    });
  return { check, close: () => client.close() };
}
