import type http2 from 'node:http2';
import type { Readable } from 'node:stream';

// node:http2 ends the readable side of a stream reset with RST_STREAM CANCEL (and of one
// reset from this side) as if END_STREAM had come: 'end', no 'error'. A body passed on
// at its 'end' alone would then reach the far side as complete when it was cut short,
// which is why every body's end is checked here first.

/** The RST_STREAM code when `body` is an HTTP/2 stream that was reset; undefined when it ended (or is no HTTP/2 stream). */
export function resetCode(body: Readable): number | undefined {
  const code = (body as { rstCode?: number }).rstCode;
  return code ? code : undefined;
}

/**
 * Pipes `body` into `stream` and ends it the way the body ended: END_STREAM, or RST_STREAM
 * with the body's own code. `stream` must have been opened with waitForTrailers (both
 * callers do, to pass trailers on): only then does close() send RST_STREAM alone, where
 * node:http2 would otherwise end the stream cleanly first.
 */
export function pipeToH2(body: Readable, stream: http2.Http2Stream): void {
  body.pipe(stream, { end: false });
  body.once('end', () => {
    const code = resetCode(body);
    if (code) stream.close(code);
    else stream.end();
  });
}
