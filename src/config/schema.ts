import { z } from 'zod';
import { LOG_LEVELS } from '../log.ts';
import { parseSpiffeId, parseTrustDomain } from '../tls/spiffe.ts';
import { cidr, duration, initNumber, listenerPort, port, portKey, showValue, wholeNumber } from './fields.ts';
import { resilienceSchema } from './resilience-schema.ts';

export { showValue } from './fields.ts';

// The proxy's configuration. Every field has a default, so no file is needed; a YAML
// file (--config / MESHLET_CONFIG) and MESHLET_* variables override. Unknown fields (and
// MESHLET_* variables, see load.ts) are errors, so a typo is reported instead of silently
// ignored. Every error message shows the bad value and what would be accepted.

/** pino's levels, from the most to the least verbose. */

const listener = (defaults: { port: number; connectTimeout: string }) => ({
  /** Port the listener binds (dual-stack); the one the interception rules redirect to. */
  port: listenerPort('the interception rules can redirect to').default(defaults.port),
  /** How long to wait for the TCP connection to the original destination. */
  connectTimeout: duration.prefault(defaults.connectTimeout),
  /**
   * How long to wait for a client's first bytes to tell its protocol (mTLS, HTTP/2,
   * HTTP/1.x). Clients of those protocols send at once; a client still silent after this
   * is served as opaque TCP (for example a server-first protocol such as MySQL on a port
   * that is not in protocols.opaquePorts).
   */
  detectTimeout: duration.prefault('1s'),
});

/** Text that must parse with `parse`; its error message becomes the field's. */
const checked = (parse: (text: string) => unknown) =>
  z.string().superRefine((text, ctx) => {
    try {
      parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

/** `permissive` accepts mTLS and plaintext; `strict` only mTLS; `disable` never terminates mTLS. */
const mtlsMode = z.enum(['permissive', 'strict', 'disable']);

/** A port's protocol when configured rather than detected. */
const appProtocol = z.enum(['tcp', 'http', 'http2', 'grpc']);

/** Matches a principal exactly, or by prefix when it ends in `*`; `*` alone matches any authenticated peer. */
const principalPattern = z.string().min(1);

const authorizationRule = z.strictObject({
  action: z.enum(['allow', 'deny']),
  /** Peer SPIFFE IDs; plaintext peers have none, so a rule with principals never matches them. */
  principals: z.array(principalPattern).optional(),
  /** Namespaces from the peer's SPIFFE path (/ns/NS/sa/SA). */
  namespaces: z.array(z.string().min(1)).optional(),
  /** Destination (app) ports. */
  ports: z.array(port).optional(),
});

const meshPeer = z.strictObject({
  /** Destinations (CIDRs) whose traffic is carried over mTLS by the outbound proxy. */
  cidrs: z.array(cidr).min(1),
  /** Only these destination ports; all when absent. */
  ports: z.array(port).optional(),
  /** The exact SPIFFE ID the destination must present. */
  spiffeId: checked(parseSpiffeId).optional(),
  /** Any identity of this trust domain (the default: our own trust domain). */
  trustDomain: checked(parseTrustDomain).optional(),
});

/** One app probe the sidecar would run: exactly one handler, as kubelet's probe had it. */
const appProbe = z
  .strictObject({
    httpGet: z
      .strictObject({
        port,
        path: z.string().optional(),
        scheme: z.enum(['HTTP', 'HTTPS']).optional(),
        httpHeaders: z.array(z.strictObject({ name: z.string(), value: z.string() })).optional(),
      })
      .optional(),
    tcpSocket: z.strictObject({ port }).optional(),
    grpc: z.strictObject({ port, service: z.string().optional() }).optional(),
    timeoutSeconds: wholeNumber('a number of seconds', 1, 3600).optional(),
  })
  .refine((p) => [p.httpGet, p.tcpSocket, p.grpc].filter(Boolean).length === 1, { error: 'needs exactly one of httpGet, tcpSocket, grpc' });

export const configSchema = z
  .strictObject({
    outbound: z.strictObject(listener({ port: 15001, connectTimeout: '1s' })).prefault({}),
    inbound: z
      .strictObject({
        ...listener({ port: 15006, connectTimeout: '1s' }),
        mtls: mtlsMode.default('permissive'),
        /**
         * Per-port overrides of `mtls`, keyed by the app's port. (Not `ports`: the
         * variable MESHLET_INBOUND_PORTS belongs to `meshlet init`.)
         */
        perPort: z.record(portKey, z.strictObject({ mtls: mtlsMode })).default({}),
        /** Ordered rules; the first that matches decides. No match, or no rules: allow. */
        authorization: z.array(authorizationRule).default([]),
      })
      .prefault({}),
    identity: z
      .strictObject({
        /** Directory with tls.crt, tls.key and ca.crt (a Kubernetes TLS secret); no mTLS when unset. */
        dir: z.string().min(1).optional(),
      })
      .prefault({}),
    mesh: z
      .strictObject({
        peers: z.array(meshPeer).default([]),
      })
      .prefault({}),
    protocols: z
      .strictObject({
        /**
         * Ports served as opaque TCP without waiting for the client to speak: server-first
         * protocols (the server greets first, so detection would only stall them) and
         * protocols that must never be parsed. Linkerd's list plus FTP, SSH, POP3, IMAP and NATS.
         */
        opaquePorts: z.array(port).default([21, 22, 25, 110, 143, 587, 3306, 4222, 4444, 5432, 6379, 9300, 11211]),
        /**
         * The protocol of a destination port, instead of detecting it: `tcp` (opaque),
         * `http` (HTTP/1.x), `http2` (h2c with prior knowledge) or `grpc`.
         */
        ports: z.record(portKey, appProtocol).default({}),
      })
      .prefault({}),
    http: z
      .strictObject({
        /** A request head (request line and headers) larger than this is answered 431. Envoy's default. */
        maxRequestHeadersKb: wholeNumber('a size in KiB', 1, 8192).default(60),
        /** A request head that has not fully arrived this long after its first byte (or the connection) is answered 408. */
        requestHeadersTimeout: duration.prefault('10s'),
        /** Add an x-request-id header (a random UUID) to requests that arrive without one. */
        requestId: z.boolean().default(true),
        /** Upstream keep-alive connections idle for this long are closed by the proxy first (avoids racing the server's own close). */
        upstreamIdleTimeout: duration.prefault('30s'),
        /**
         * An HTTP/2 (or gRPC) stream with no frame either way for this long is reset (CANCEL)
         * and its upstream exchange cancelled; 0s: never. Envoy's and Istio's default.
         */
        streamIdleTimeout: duration.prefault('5m'),
      })
      .prefault({}),
    workload: z
      .strictObject({
        /**
         * This pod's workload (Deployment or other owner) name, namespace, app and version
         * labels, sent to peer sidecars and used in metric labels; in a pod they come from the
         * downward API (docs/observability.md). An empty namespace is the SPIFFE ID's.
         */
        name: z.string().default(''),
        namespace: z.string().default(''),
        app: z.string().default(''),
        version: z.string().default(''),
        /**
         * The pod's own name and service account (meshlet inject sets them from the downward
         * API); kept for logs and the admin server's config dump. An empty `name`, or one
         * that is the pod's own name, is derived from `pod` the way Deployments, ReplicaSets,
         * StatefulSets and Jobs name their pods (telemetry/workload.ts).
         */
        pod: z.string().default(''),
        serviceAccount: z.string().default(''),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        /**
         * Request (HTTP) and connection (TCP) metrics. Off, their recording layers are not
         * built; the proxy's own metrics (detections, refusals, certificate expiry, process)
         * are still served.
         */
        enabled: z.boolean().default(true),
        /** The metric names' prefix: `meshlet`, or `istio` so Istio's dashboards and Kiali read them unchanged. */
        prefix: z
          .string()
          .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, { error: (issue) => `${showValue(issue.input)} is not a metric name prefix (letters, digits and _, not starting with a digit)` })
          .default('meshlet'),
      })
      .prefault({}),
    accessLog: z
      .strictObject({
        /** One JSON line per HTTP request and per opaque TCP connection, on stdout. Off by default, as in Istio. */
        enabled: z.boolean().default(false),
        /** The share of requests and connections logged when enabled: 1 logs all of them, 0.01 one in a hundred. */
        sampleRatio: z
          .number({ error: (issue) => `expected a ratio between 0 and 1, got ${showValue(issue.input)}` })
          .min(0, { error: (issue) => `${showValue(issue.input)} is not a ratio between 0 and 1` })
          .max(1, { error: (issue) => `${showValue(issue.input)} is not a ratio between 0 and 1` })
          .default(1),
      })
      .prefault({}),
    /**
     * OpenTelemetry spans (docs/observability.md, "Tracing"). Set by the standard OTEL_*
     * variables (config/otel-env.ts), or here; off while there is no endpoint.
     */
    tracing: z
      .strictObject({
        /** The OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); '' exports nothing and adds no layer. */
        endpoint: z
          .string()
          .refine((v) => v === '' || /^https?:\/\/[^/]/.test(v), { error: (issue) => `${showValue(issue.input)} is not an http:// or https:// URL` })
          .default(''),
        /** How spans are encoded: OTLP protobuf (the OpenTelemetry default) or OTLP JSON. */
        protocol: z.enum(['http/protobuf', 'http/json']).default('http/protobuf'),
        /** service.name of the spans; '' takes the workload's canonical service (its app label, else its name). */
        serviceName: z.string().default(''),
        /** OTEL_TRACES_SAMPLER's values; parent-based ones follow the caller's decision and sample new traces by `samplerArg`. */
        sampler: z.enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']).default('parentbased_always_on'),
        /** The share of new traces sampled by the `traceidratio` samplers. */
        samplerArg: z
          .number({ error: (issue) => `expected a ratio between 0 and 1, got ${showValue(issue.input)}` })
          .min(0, { error: (issue) => `${showValue(issue.input)} is not a ratio between 0 and 1` })
          .max(1, { error: (issue) => `${showValue(issue.input)} is not a ratio between 0 and 1` })
          .default(1),
        /** The trace headers written into every forwarded request (each request also keeps the format it came in). */
        propagators: z.array(z.enum(['tracecontext', 'baggage', 'b3', 'b3multi', 'none'])).default(['tracecontext', 'baggage']),
      })
      .prefault({}),
    tcp: z
      .strictObject({
        /** A proxied connection with no bytes in either direction for this long is closed. */
        idleTimeout: duration.prefault('1h'),
      })
      .prefault({}),
    /** Timeouts, retries, limits, rate limits and fault injection per destination (docs/resilience.md); hot-reloaded. */
    resilience: resilienceSchema,
    health: z
      .strictObject({
        /** /healthz/ready, /healthz/live and /stats/prometheus. */
        port: listenerPort("kubelet's probes and Prometheus can be pointed at").default(15020),
        /**
         * The app's own probes, by path on this port (`/app-health/<container>/livez`):
         * what kubelet would have checked (httpGet, tcpSocket or grpc, ports as numbers),
         * for the sidecar to check against the app over localhost when strict mTLS keeps
         * kubelet's plaintext probes out. meshlet inject writes it; the health server
         * answers each path by running its probe (docs/kubernetes.md, "Probes under strict mTLS").
         */
        appProbes: z.record(z.string().regex(/^\/app-health\/[^/]+\/(livez|readyz|startupz)$/, { error: 'expected a path /app-health/<container>/livez, readyz or startupz' }), appProbe).default({}),
      })
      .prefault({}),
    admin: z
      .strictObject({
        /** /config_dump, /clusters, /certs, /logging, POST /drain, POST /quitquitquit; bound on 127.0.0.1 only. */
        port: listenerPort('the admin server can be found at').default(15000),
      })
      .prefault({}),
    drain: z
      .strictObject({
        /**
         * After SIGTERM or POST /drain, how long the inbound listener still accepts new
         * connections: callers learn of the pod's end (its endpoint removed once readiness
         * fails) only after a while. Istio's terminationDrainDuration.
         */
        delay: duration.prefault('5s'),
        /** The most the whole drain may take: connections still open then are closed and the proxy exits. */
        timeout: duration.prefault('30s'),
      })
      .prefault({}),
    proxy: z
      .strictObject({
        /**
         * The UID whose traffic the interception rules exempt (meshlet init --proxy-uid,
         * MESHLET_PROXY_UID for both). The proxy refuses to start under another UID and
         * GID, whose connections the rules would send back to it.
         */
        uid: initNumber(wholeNumber('a user id', 0, 4294967294).default(1337)),
        /** The GID they exempt (meshlet init --proxy-gid); the UID when unset, as for init. */
        gid: initNumber(wholeNumber('a group id', 0, 4294967294).optional()),
        /**
         * V8's young-generation semi-space, in MiB (node --max-semi-space-size). Small keeps
         * a sidecar's memory down; HTTP/2-heavy workloads allocate more per request and
         * scavenge less often with more (docs/performance.md). Applies at start.
         */
        semiSpaceSize: wholeNumber('a size in MiB', 1, 64).default(2),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info'),
      })
      .prefault({}),
  })
  .prefault({});

export type Config = z.output<typeof configSchema>;
