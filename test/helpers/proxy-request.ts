import { RequestAbort } from '../../src/pipeline/abort.ts';
import type { AcceptedConnection } from '../../src/pipeline/connection.ts';
import type { ProxyRequest } from '../../src/pipeline/exchange.ts';

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
  grpc: false,
  abort: new RequestAbort(),
  onContinue: () => {},
  ...over,
});
