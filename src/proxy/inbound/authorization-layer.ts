import type { Logger } from '../../log.ts';
import { authorize, type AuthorizationRule } from '../../tls/authorization.ts';
import type { TcpMetrics } from '../../telemetry/tcp-metrics.ts';
import { formatHostPort } from '../../net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../../pipeline/connection.ts';
import type { Layer } from '../../pipeline/compose.ts';
import { reset } from '../tcp/forward.ts';

/** Applies `inbound.authorization` right after the handshake; a denied peer is closed at once. */
export function authorizationLayer(rules: readonly AuthorizationRule[], log: Logger, metrics: TcpMetrics): Layer<AcceptedConnection, ConnectionOutcome> {
  return (next) => async (conn) => {
    if (rules.length === 0) return next(conn);
    const decision = authorize(rules, { principal: conn.peerPrincipal, port: conn.origDst.port });
    if (decision.allowed) return next(conn);
    metrics.refused.inc({ reporter: 'destination', reason: 'rbac' });
    log.warn(
      { peer: formatHostPort(conn.peer.address, conn.peer.port), principal: conn.peerPrincipal ?? null, port: conn.origDst.port, rule: decision.rule },
      `connection denied by inbound.authorization[${decision.rule}]`,
    );
    reset(conn.socket);
    return { receivedBytes: 0, sentBytes: 0, flag: 'RBAC', reason: 'rbac' };
  };
}
