import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { formatHostPort } from '../net/addresses.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import type { WorkloadMetadata } from '../pipeline/exchange.ts';
import type { Handler, Layer } from '../pipeline/compose.ts';
import { answerStatus, shapeOf } from '../pipeline/error-shape.ts';

let nextRequestId = 1;

/**
 * One line per HTTP request at debug level (off by default, like Istio's access log),
 * written when the response head is known: connections between sidecars are pooled and
 * long-lived, so the connection's own line would come much later, once for many requests.
 */
export function requestLogLayer(log: Logger): Layer<ProxyRequest, ProxyResponse> {
  // Off (the default), a request passes straight through: no async wrapper, no extra
  // promise. The level is checked per request, so a level changed at run time applies.
  return (next) => (req) => (log.isLevelEnabled('debug') ? logged(log, next, req) : next(req));
}

async function logged(log: Logger, next: Handler<ProxyRequest, ProxyResponse>, req: ProxyRequest): Promise<ProxyResponse> {
  const started = performance.now();
  const request = nextRequestId++;
  const entry = (status: number | undefined, flag: string, peer: WorkloadMetadata | undefined) => ({
    direction: req.conn.direction,
    conn: req.conn.id,
    request,
    peer: formatHostPort(req.conn.peer.address, req.conn.peer.port),
    dst: formatHostPort(req.conn.origDst.address, req.conn.origDst.port),
    security: req.conn.security,
    ...(req.conn.peerPrincipal ? { principal: req.conn.peerPrincipal } : {}),
    // The other side's workload: the caller's inbound (request), the callee's outbound (response).
    ...(peer?.name ? { peerWorkload: `${peer.namespace}/${peer.name}` } : {}),
    protocol: req.protocol,
    method: req.method,
    authority: req.authority,
    path: req.path,
    status,
    flag,
    durationMs: Math.round(performance.now() - started),
  });
  try {
    const response = await next(req);
    log.debug(entry(response.status, response.flag, req.peer ?? response.peer), 'request');
    return response;
  } catch (err) {
    // The listener answers a failed request itself (proxy/http/error-response.ts), with the
    // status and flag of the error's shape; a client that has gone gets no answer at all.
    const shape = req.abort.aborted ? undefined : shapeOf(err);
    const outcome = shape ? entry(answerStatus(shape, req.grpc), shape.flag, req.peer) : entry(undefined, 'DC', req.peer);
    log.debug({ ...outcome, ...(shape ? { cause: shape.cause } : {}), err: describeError(err) }, 'request');
    throw err;
  }
}
