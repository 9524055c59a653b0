import type { Container, Json, PodSpec } from './kube.ts';
import type { InjectSettings } from './settings.ts';

// The containers and the volume injection adds, from the settings alone. The proxy
// reads its configuration from MESHLET_* variables (src/config/load.ts refuses any it
// does not know), so every variable set here is a configuration field or one of
// meshlet init's flags.

export const INIT_NAME = 'meshlet-init';
export const PROXY_NAME = 'meshlet-proxy';
export const IDENTITY_VOLUME = 'meshlet-identity';
export const IDENTITY_DIR = '/var/run/secrets/meshlet';
export const PROXY_UID = 1337;
export const HEALTH_PORT = 15020;

/**
 * Runs `meshlet init` (not the image's entry point, which adds --validate: validating
 * starts a process as the proxy's UID, which needs CAP_SETUID and CAP_SETGID, and this
 * container gets NET_ADMIN and NET_RAW only).
 */
export function initContainer(settings: InjectSettings): Container {
  const env = Object.entries(settings.initEnv).map(([name, value]) => ({ name, value }));
  return {
    name: INIT_NAME,
    image: settings.initImage,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    command: ['meshlet', 'init'],
    ...(env.length > 0 ? { env } : {}),
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });

const healthProbe = (path: string, extra: Json = {}) => ({ httpGet: { path, port: HEALTH_PORT }, periodSeconds: 10, ...extra });

export interface SidecarInputs {
  readonly settings: InjectSettings;
  /** The workload's name (Deployment, ...), when known statically; else the pod's name. */
  readonly workloadName: string | undefined;
  /** MESHLET_HEALTH_APP_PROBES: the app's probes the sidecar answers for, when rewritten. */
  readonly appProbes: Readonly<Record<string, unknown>> | undefined;
}

export function proxyContainer({ settings, workloadName, appProbes }: SidecarInputs): Container {
  const env: Json[] = [
    workloadName === undefined ? fieldEnv('MESHLET_WORKLOAD_NAME', 'metadata.name') : { name: 'MESHLET_WORKLOAD_NAME', value: workloadName },
    fieldEnv('MESHLET_WORKLOAD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('MESHLET_WORKLOAD_APP', "metadata.labels['app']"),
    fieldEnv('MESHLET_WORKLOAD_VERSION', "metadata.labels['version']"),
    fieldEnv('MESHLET_WORKLOAD_POD', 'metadata.name'),
    fieldEnv('MESHLET_WORKLOAD_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    { name: 'MESHLET_IDENTITY_DIR', value: IDENTITY_DIR },
  ];
  if (settings.meshCidrs !== undefined) env.push({ name: 'MESHLET_MESH_PEERS', value: `[{cidrs: [${settings.meshCidrs.join(', ')}]}]` });
  if (settings.mtls !== undefined) env.push({ name: 'MESHLET_INBOUND_MTLS', value: settings.mtls });
  if (appProbes !== undefined) env.push({ name: 'MESHLET_HEALTH_APP_PROBES', value: JSON.stringify(appProbes) });
  const { cpu, memory, cpuLimit, memoryLimit } = settings.resources;
  const limits = { ...(cpuLimit ? { cpu: cpuLimit } : {}), ...(memoryLimit ? { memory: memoryLimit } : {}) };
  const native = settings.sidecarMode === 'native';
  return {
    name: PROXY_NAME,
    image: settings.proxyImage,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    ...(native ? { restartPolicy: 'Always' } : {}),
    command: ['meshlet', 'proxy'],
    env,
    ports: [{ name: 'meshlet-health', containerPort: HEALTH_PORT, protocol: 'TCP' }],
    resources: { requests: { cpu, memory }, ...(Object.keys(limits).length > 0 ? { limits } : {}) },
    // Native: kubelet starts the next container only once the startup probe passes, so
    // the app never starts before the proxy is ready. Classic: the postStart hook does
    // that (kubelet runs the next container after the hook returns).
    ...(native ? { startupProbe: healthProbe('/healthz/ready', { periodSeconds: 1, failureThreshold: 600 }) } : {}),
    readinessProbe: healthProbe('/healthz/ready', { periodSeconds: 2 }),
    livenessProbe: healthProbe('/healthz/live'),
    ...(native ? {} : { lifecycle: { postStart: { exec: { command: ['meshlet', 'wait'] } } } }),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [{ name: IDENTITY_VOLUME, mountPath: IDENTITY_DIR, readOnly: true }],
  };
}

/** The identity: a Secret in the tls.crt/tls.key/ca.crt layout, or a cert-manager CSI volume. */
export function identityVolume(settings: InjectSettings, spec: PodSpec): Json {
  const serviceAccount = spec.serviceAccountName ?? 'default';
  if (settings.identity === 'secret') {
    return { name: IDENTITY_VOLUME, secret: { secretName: settings.identitySecret.replaceAll('{serviceAccount}', serviceAccount) } };
  }
  // cert-manager's csi-driver fills these variables in per pod; it writes tls.crt,
  // tls.key and ca.crt, the layout the proxy reads, and renews before expiry.
  return {
    name: IDENTITY_VOLUME,
    csi: {
      driver: 'csi.cert-manager.io',
      readOnly: true,
      volumeAttributes: {
        'csi.cert-manager.io/issuer-name': settings.issuer,
        'csi.cert-manager.io/issuer-kind': settings.issuerKind,
        'csi.cert-manager.io/uri-sans': `spiffe://${settings.trustDomain}/ns/\${POD_NAMESPACE}/sa/\${SERVICE_ACCOUNT_NAME}`,
        'csi.cert-manager.io/common-name': '${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}',
        'csi.cert-manager.io/key-usages': 'digital signature,key encipherment,server auth,client auth',
      },
    },
  };
}
