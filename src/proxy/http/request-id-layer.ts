import { randomUUID } from 'node:crypto';
import type { Layer } from '../../pipeline/compose.ts';
import type { ProxyRequest, ProxyResponse } from '../../pipeline/exchange.ts';
import { get } from './headers.ts';

/** Adds `x-request-id` (a random UUID) to a request that has none, as Envoy does; one that has one keeps it. */
export function requestIdLayer(enabled: boolean): Layer<ProxyRequest, ProxyResponse> {
  if (!enabled) return (next) => next;
  return (next) => (req) => {
    if (get(req.headers, 'x-request-id') !== undefined) return next(req);
    req.headers.push(req.protocol === 'http1' ? 'X-Request-Id' : 'x-request-id', randomUUID());
    return next(req);
  };
}
