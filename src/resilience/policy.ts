import net from 'node:net';
import type { BreakerFailureOn, DestinationConfig, InboundPortConfig, ResilienceConfig, RetryOn } from '../config/resilience-schema.ts';
import type { OrigDst } from '../net/addresses.ts';

// The resilience configuration turned into what the layers read: one frozen Policy per
// `defaults` and per `destinations[i]` (the defaults with the entry's fields over them),
// made once per configuration, and the rules that pick one for a destination.

export interface RetryPolicy {
  /** Tries in all, the first included; 1: no retries. */
  readonly attempts: number;
  readonly retryOn: ReadonlySet<RetryOn>;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly nonIdempotent: boolean;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly budget: BudgetPolicy;
  /** Some condition asks to look at responses (statuses, grpc-status): otherwise a response is never inspected. */
  readonly onResponses: boolean;
}

export interface BudgetPolicy {
  /** Retries allowed per request in the window (0.2: 20 %). */
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly windowMs: number;
}

export interface FaultPolicy {
  readonly delay: { readonly percent: number; readonly ms: number } | undefined;
  readonly abort: { readonly percent: number; readonly status: number; readonly grpcStatus: number } | undefined;
}

export interface LimitsPolicy {
  /** Connections open to the destination (HTTP/1.1 pools, opaque TCP); 0: no limit. */
  readonly maxConnections: number;
  readonly maxConcurrentRequests: number;
  readonly maxPendingRequests: number;
  readonly maxConcurrentRetries: number;
}

export interface BreakerPolicy {
  /** Opens after this many failures in a row; 0: not by count. */
  readonly consecutiveFailures: number;
  /** Opens when more than this percentage of the window's requests failed; 0: not by rate. */
  readonly errorPercent: number;
  readonly windowMs: number;
  readonly minRequests: number;
  readonly failureOn: ReadonlySet<BreakerFailureOn>;
  readonly openMs: number;
  readonly maxOpenMs: number;
}

export interface Policy {
  /** `default`, or the destination entry's name (`destinations[i]` when it has none); a metric label. */
  readonly name: string;
  /** 0: none. */
  readonly timeoutMs: number;
  readonly perTryTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: RetryPolicy;
  readonly limits: LimitsPolicy;
  /** Undefined when no fault is injected (the default). */
  readonly fault: FaultPolicy | undefined;
  /** Undefined when the destination has no circuit breaker (the default: neither threshold set). */
  readonly breaker: BreakerPolicy | undefined;
}

export interface RatePolicy {
  readonly perSecond: number;
  readonly burst: number;
}

export interface InboundPortPolicy {
  readonly port: number;
  readonly maxConnections: number;
  readonly maxConcurrentRequests: number;
  readonly rateLimit: RatePolicy | undefined;
  /** Per path prefix, in order: the first that starts a request's path applies. */
  readonly routes: ReadonlyArray<{ readonly pathPrefix: string; readonly rateLimit: RatePolicy }>;
}

const RESPONSE_CONDITIONS: readonly RetryOn[] = ['5xx', 'gateway-error', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'];

type Defaults = ResilienceConfig['defaults'];
type Override = Omit<DestinationConfig, 'name' | 'match'>;

function policyOf(name: string, d: Defaults, o: Override, connectTimeoutMs: number): Policy {
  const r = { ...d.retries, ...o.retries, budget: { ...d.retries.budget, ...o.retries?.budget } };
  const retryOn = new Set(r.retryOn);
  const fault = { ...d.fault, ...o.fault };
  const limits = { ...d.limits, ...o.limits };
  const cb = { ...d.circuitBreaker, ...o.circuitBreaker };
  return Object.freeze({
    name,
    timeoutMs: o.timeout ?? d.timeout,
    perTryTimeoutMs: o.perTryTimeout ?? d.perTryTimeout,
    connectTimeoutMs: o.connectTimeout ?? d.connectTimeout ?? connectTimeoutMs,
    retries: Object.freeze({
      attempts: r.attempts,
      retryOn,
      retriableStatusCodes: new Set(r.retriableStatusCodes),
      nonIdempotent: r.nonIdempotent,
      backoffBaseMs: r.backoffBase,
      backoffMaxMs: Math.max(r.backoffMax, r.backoffBase),
      budget: Object.freeze({ ratio: r.budget.percent / 100, minPerSecond: r.budget.minPerSecond, windowMs: Math.max(1000, r.budget.window) }),
      onResponses: RESPONSE_CONDITIONS.some((c) => retryOn.has(c)),
    }),
    limits: Object.freeze(limits),
    fault:
      fault.delay?.percent || fault.abort?.percent
        ? Object.freeze({
            delay: fault.delay?.percent ? { percent: fault.delay.percent, ms: fault.delay.duration } : undefined,
            abort: fault.abort?.percent ? { percent: fault.abort.percent, status: fault.abort.status ?? 503, grpcStatus: fault.abort.grpcStatus ?? 14 } : undefined,
          })
        : undefined,
    breaker:
      cb.consecutiveFailures > 0 || cb.errorPercent > 0
        ? Object.freeze({
            consecutiveFailures: cb.consecutiveFailures,
            errorPercent: cb.errorPercent,
            // At least a second, so each of its ten buckets spans 100 ms or more.
            windowMs: Math.max(1000, cb.window),
            minRequests: cb.minRequests,
            failureOn: new Set(cb.failureOn),
            openMs: Math.max(1, cb.openDuration),
            maxOpenMs: Math.max(cb.maxOpenDuration, cb.openDuration, 1),
          })
        : undefined,
  });
}

/** A policy that changes nothing: one try, no timeout, no limit, no fault, the listener's connect timeout. */
export function isInert(p: Policy, baseConnectTimeoutMs: number): boolean {
  return (
    p.timeoutMs === 0 &&
    p.perTryTimeoutMs === 0 &&
    p.retries.attempts === 1 &&
    p.limits.maxConcurrentRequests === 0 &&
    p.limits.maxConnections === 0 &&
    p.fault === undefined &&
    p.breaker === undefined &&
    p.connectTimeoutMs === baseConnectTimeoutMs
  );
}

interface Rule {
  readonly policy: Policy;
  readonly authorities: readonly AuthorityPattern[] | undefined;
  readonly cidrs: net.BlockList | undefined;
  readonly ports: ReadonlySet<number> | undefined;
}

interface AuthorityPattern {
  /** Exact host, or the suffix with its dot (`.svc.cluster.local`) when `wildcard`. */
  readonly host: string;
  readonly wildcard: boolean;
  /** Undefined: any port. */
  readonly port: number | undefined;
}

function authorityPattern(text: string): AuthorityPattern {
  const { host, port } = splitAuthority(text.toLowerCase());
  if (host === '*') return { host: '', wildcard: true, port };
  if (host.startsWith('*.')) return { host: host.slice(1), wildcard: true, port };
  return { host, wildcard: false, port };
}

/** `Host:8080` → host and port; `[::1]:80` → `::1` and 80; the port undefined when there is none. */
export function splitAuthority(authority: string): { host: string; port: number | undefined } {
  const colon = authority.lastIndexOf(':');
  const close = authority.lastIndexOf(']');
  if (colon < 0 || colon < close) return { host: stripBrackets(authority), port: undefined };
  const port = Number(authority.slice(colon + 1));
  return { host: stripBrackets(authority.slice(0, colon)), port: Number.isInteger(port) && port > 0 ? port : undefined };
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function blockList(cidrs: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const text of cidrs) {
    const [address = '', bits] = text.split('/');
    const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    list.addSubnet(address, bits === undefined ? (family === 'ipv6' ? 128 : 32) : Number(bits), family);
  }
  return list;
}

const CACHE_LIMIT = 10_000;

/**
 * Picks the policy of a destination: the first `destinations` entry whose every given
 * criterion matches (authority, original destination CIDR, port), else `defaults`.
 * Answers are cached by (authority, destination); the cache is dropped whole when full,
 * so a stream of new authorities cannot grow it without bound.
 */
export class PolicyTable {
  readonly defaults: Policy;
  readonly #rules: readonly Rule[];
  readonly #byAuthority: boolean;
  readonly #cache = new Map<string, Policy>();
  readonly inbound: InboundPolicies;
  readonly #config: ResilienceConfig;
  #inboundRequests: PolicyTable | undefined;
  /** outbound.connectTimeout: what the connection pools use unless a policy says otherwise. */
  readonly baseConnectTimeoutMs: number;

  constructor(config: ResilienceConfig, connectTimeoutMs: number) {
    this.baseConnectTimeoutMs = connectTimeoutMs;
    this.defaults = policyOf('default', config.defaults, {}, connectTimeoutMs);
    this.#rules = config.destinations.map((d, i) => ({
      policy: policyOf(d.name ?? `destinations[${i}]`, config.defaults, d, connectTimeoutMs),
      authorities: d.match.authority?.map(authorityPattern),
      cidrs: d.match.cidrs ? blockList(d.match.cidrs) : undefined,
      ports: d.match.ports ? new Set(d.match.ports) : undefined,
    }));
    this.#byAuthority = this.#rules.some((r) => r.authorities !== undefined);
    this.inbound = new InboundPolicies(config.inbound);
    this.#config = config;
  }

  /**
   * The inbound side's timeouts and retries towards the local app, as a table of its own:
   * one rule per app port that sets any (`port N`), over defaults that do nothing (one
   * try, no timeout; the caller's sidecar has its own policy). Made on first use.
   */
  get inboundRequests(): PolicyTable {
    this.#inboundRequests ??= new PolicyTable(inboundRequestConfig(this.#config), this.baseConnectTimeoutMs);
    return this.#inboundRequests;
  }

  /** Every policy, the defaults first. */
  get policies(): Policy[] {
    return [this.defaults, ...this.#rules.map((r) => r.policy)];
  }

  /** Whether any rule reads the authority (when none does, a connection's destination alone decides). */
  get byAuthority(): boolean {
    return this.#byAuthority;
  }

  /** `authority` undefined: opaque TCP, which has none. */
  resolve(authority: string | undefined, dst: OrigDst): Policy {
    if (this.#rules.length === 0) return this.defaults;
    const key = this.#byAuthority ? `${authority ?? ''}|${dst.key}` : dst.key;
    let policy = this.#cache.get(key);
    if (policy === undefined) {
      policy = this.#match(authority, dst);
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(key, policy);
    }
    return policy;
  }

  #match(authority: string | undefined, dst: OrigDst): Policy {
    const parsed = authority === undefined || !this.#byAuthority ? undefined : splitAuthority(authority.toLowerCase());
    for (const rule of this.#rules) {
      if (rule.ports && !rule.ports.has(dst.port)) continue;
      if (rule.cidrs && !rule.cidrs.check(dst.address, dst.family === 6 ? 'ipv6' : 'ipv4')) continue;
      if (rule.authorities) {
        if (!parsed) continue;
        const port = parsed.port ?? dst.port;
        const matches = rule.authorities.some(
          (a) => (a.port === undefined || a.port === port) && (a.wildcard ? a.host === '' || parsed.host.endsWith(a.host) : parsed.host === a.host),
        );
        if (!matches) continue;
      }
      return rule.policy;
    }
    return this.defaults;
  }
}

function inboundRequestConfig(config: ResilienceConfig): ResilienceConfig {
  const d = config.defaults;
  const defaults: Defaults = {
    ...d,
    timeout: 0,
    perTryTimeout: 0,
    retries: { ...d.retries, attempts: 1, retryOn: [] },
    limits: { ...d.limits, maxConnections: 0, maxConcurrentRequests: 0, maxConcurrentRetries: 0 },
    circuitBreaker: { ...d.circuitBreaker, consecutiveFailures: 0, errorPercent: 0 },
    fault: {},
  };
  const destinations: DestinationConfig[] = [];
  for (const [port, p] of Object.entries(config.inbound.ports)) {
    if (p.timeout === undefined && p.perTryTimeout === undefined && p.retries === undefined) continue;
    const rule: DestinationConfig = { name: `port ${port}`, match: { ports: [Number(port)] } };
    if (p.timeout !== undefined) rule.timeout = p.timeout;
    if (p.perTryTimeout !== undefined) rule.perTryTimeout = p.perTryTimeout;
    if (p.retries !== undefined) rule.retries = p.retries;
    destinations.push(rule);
  }
  return { defaults, destinations, inbound: { maxConnections: 0, maxConcurrentRequests: 0, ports: {} } };
}

/** The inbound listener's limits: totals over every port, and per app port. */
export class InboundPolicies {
  readonly maxConnections: number;
  readonly maxConcurrentRequests: number;
  /** Some port has a connection limit of its own (read per connection: computed once). */
  readonly perPortConnections: boolean;
  /** Some port has a request limit or a rate limit of its own (read per request: computed once). */
  readonly perPortRequests: boolean;
  readonly #ports: ReadonlyMap<number, InboundPortPolicy>;

  constructor(config: ResilienceConfig['inbound']) {
    this.maxConnections = config.maxConnections;
    this.maxConcurrentRequests = config.maxConcurrentRequests;
    this.#ports = new Map(Object.entries(config.ports).map(([key, p]) => [Number(key), portPolicy(Number(key), p)]));
    const ports = [...this.#ports.values()];
    this.perPortConnections = ports.some((p) => p.maxConnections > 0);
    this.perPortRequests = ports.some((p) => p.maxConcurrentRequests > 0 || p.rateLimit !== undefined || p.routes.length > 0);
  }

  /** Undefined: the port has no policy of its own. */
  port(port: number): InboundPortPolicy | undefined {
    return this.#ports.get(port);
  }
}

function ratePolicy(r: { requestsPerSecond: number; burst?: number | undefined }): RatePolicy {
  return { perSecond: r.requestsPerSecond, burst: r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond)) };
}

function portPolicy(port: number, p: InboundPortConfig): InboundPortPolicy {
  return Object.freeze({
    port,
    maxConnections: p.maxConnections ?? 0,
    maxConcurrentRequests: p.maxConcurrentRequests ?? 0,
    rateLimit: p.rateLimit ? ratePolicy(p.rateLimit) : undefined,
    routes: (p.routes ?? []).map((r) => ({ pathPrefix: r.pathPrefix, rateLimit: ratePolicy(r.rateLimit) })),
  });
}
