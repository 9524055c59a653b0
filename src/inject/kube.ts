// The few Kubernetes object shapes injection reads and writes. Only the fields it
// looks at are typed; everything else passes through untouched, so an unknown or newer
// field of a pod spec survives injection.

export type Json = Record<string, unknown>;

export interface Probe extends Json {
  httpGet?: { port: number | string; path?: string; host?: string; scheme?: string; httpHeaders?: Array<{ name: string; value: string }> };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  exec?: { command: string[] };
  timeoutSeconds?: number;
}

export interface SecurityContext extends Json {
  runAsUser?: number;
}

export interface Container extends Json {
  name: string;
  image?: string;
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: SecurityContext;
  restartPolicy?: string;
}

export interface PodSpec extends Json {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Array<Json & { name: string }>;
  hostNetwork?: boolean;
  serviceAccountName?: string;
  securityContext?: SecurityContext;
}

export interface ObjectMeta extends Json {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Array<{ kind: string; name: string }>;
}

export interface PodTemplate extends Json {
  metadata?: ObjectMeta;
  spec: PodSpec;
}

export const PROBE_KINDS = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
