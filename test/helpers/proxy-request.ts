import type { AcceptedConnection } from '../../src/proxy/connection.ts';
import type { ProxyRequest } from '../../src/proxy/http/exchange.ts';

/** A bodiless HTTP/1.1 GET as the request pipeline sees it, for tests of one layer. */
export const proxyRequest = (over: Partial<ProxyRequest> = {}): ProxyRequest => ({
  conn: {} as AcceptedConnection,
  protocol: 'http1',
  method: 'GET',
  authority: 'cart:8080',
  path: '/',
  scheme: 'http',
  headers: [],
  hostName: 'HoSt',
  body: undefined,
  trailers: () => [],
  grpc: false,
  signal: new AbortController().signal,
  onContinue: () => {},
  ...over,
});
