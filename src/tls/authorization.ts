import type { Config } from '../config/schema.ts';
import { namespaceOf } from './spiffe.ts';

export type AuthorizationRule = Config['inbound']['authorization'][number];

export interface AuthorizationRequest {
  /** The peer's SPIFFE ID; absent for plaintext peers. */
  readonly principal?: string | undefined;
  /** The app port the peer connected to. */
  readonly port: number;
}

export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** Index of the deciding rule in `inbound.authorization`, absent for the default. */
  readonly rule?: number;
}

function principalMatches(pattern: string, principal: string | undefined): boolean {
  if (principal === undefined) return false;
  return pattern.endsWith('*') ? principal.startsWith(pattern.slice(0, -1)) : principal === pattern;
}

/** All fields a rule sets must match; the first matching rule decides; no match allows. */
export function authorize(rules: readonly AuthorizationRule[], request: AuthorizationRequest): AuthorizationDecision {
  const namespace = request.principal === undefined ? undefined : namespaceOf(request.principal);
  for (const [index, rule] of rules.entries()) {
    if (rule.principals && !rule.principals.some((p) => principalMatches(p, request.principal))) continue;
    if (rule.namespaces && (namespace === undefined || !rule.namespaces.includes(namespace))) continue;
    if (rule.ports && !rule.ports.includes(request.port)) continue;
    return { allowed: rule.action === 'allow', rule: index };
  }
  return { allowed: true };
}
