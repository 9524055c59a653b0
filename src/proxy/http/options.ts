import type { Config } from '../../config/schema.ts';
import type { H2DownstreamOptions } from './h2-downstream.ts';
import type { Http1DownstreamOptions } from './http1-downstream.ts';

/** The HTTP servers' limits, from the configuration; the same on both listeners. */
export function downstreamOptions(config: Config): Http1DownstreamOptions & H2DownstreamOptions {
  return {
    maxHeaderBytes: config.http.maxRequestHeadersKb * 1024,
    headersTimeoutMs: config.http.requestHeadersTimeout,
    idleTimeoutMs: config.tcp.idleTimeout,
    maxConcurrentStreams: 1000,
    streamIdleTimeoutMs: config.http.streamIdleTimeout,
  };
}
