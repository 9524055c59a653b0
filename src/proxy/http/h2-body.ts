import http2 from 'node:http2';
import { bodyAbort, PushBody, type Body } from '../../pipeline/body.ts';
import type { RawHeaders } from '../../pipeline/headers.ts';

const { NGHTTP2_CANCEL } = http2.constants;

// Bodies between the pipeline's light Body and node:http2's streams.
//
// node:http2 ends the readable side of a stream reset with RST_STREAM CANCEL (and of one
// reset from this side) as if END_STREAM had come: 'end', no 'error'. A body passed on at
// its 'end' alone would then reach the far side as complete when it was cut short, which
// is why every stream's end is checked against its rstCode first.
//
// A stream emits 'end', 'close' and 'wantTrailers' at most once, so their listeners are
// added with on(), not once(): once() wraps each listener and removes it when it fires,
// which callgrind counted at about 16 000 instructions a request per sidecar in HTTP/2
// (a wrapper per listener, and each removal searching the stream's listener arrays).
// Each listener added costs about 1 300 more (megamorphic loads in Readable.on and the
// emitter), so a stream has one 'close' listener, its owner's, which tells the bodies
// here through the `closed` functions they return.

/** Called by the stream's owner when the stream closes (its one 'close' listener). */
export type OnStreamClose = () => void;

/**
 * The body of a received HTTP/2 stream with head `headers`; `trailers` is read when it
 * ends. The owner calls `closed` when the stream closes.
 */
export function h2Body(stream: http2.Http2Stream, headers: http2.IncomingHttpHeaders, trailers: () => RawHeaders): { body: Body; closed: OnStreamClose } {
  const body = new PushBody(
    {
      pause: () => stream.pause(),
      resume: () => stream.resume(),
      cancel: () => {
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
      },
    },
    declaredLength(headers),
  );
  let ended = false;
  stream.on('data', (chunk: Buffer) => body.push(chunk));
  stream.on('end', () => {
    ended = true;
    const code = stream.rstCode;
    if (code) body.fail(bodyAbort(`the stream was reset (code ${code})`, code));
    else body.finish(trailers());
  });
  // Every stream closes; an Error (and its stack) only for one that closed before its end.
  const closed = () => {
    if (!ended) body.fail(bodyAbort(`the stream closed before its end (code ${stream.rstCode ?? 0})`, stream.rstCode || NGHTTP2_CANCEL));
  };
  return { body, closed };
}

/**
 * Sends `body` on `stream` and ends it the way the body ended: END_STREAM with trailers,
 * or RST_STREAM with the body's own code (`resetCode` when it has none). `stream` must
 * have been opened with waitForTrailers: only then does close() send RST_STREAM alone,
 * where node:http2 would otherwise end the stream cleanly first. The owner calls the
 * function returned when the stream closes.
 */
export function pipeBodyToH2(body: Body, stream: http2.Http2Stream, sendTrailers: (trailers: RawHeaders) => void, resetCode: number): OnStreamClose {
  let finished = false;
  stream.on('drain', () => body.resume());
  body.pipe({
    data: (chunk) => stream.destroyed || stream.write(chunk),
    end: (trailers) => {
      finished = true;
      if (stream.destroyed) return;
      stream.on('wantTrailers', () => sendTrailers(trailers));
      stream.end();
    },
    abort: (err) => {
      finished = true;
      if (!stream.destroyed) stream.close(err.rstCode ?? resetCode);
    },
  });
  return () => {
    if (!finished) body.cancel(bodyAbort(`the stream closed (code ${stream.rstCode ?? 0})`, stream.rstCode));
  };
}

/** A declared content-length, which an HTTP/1.1 hop can then send as is. */
function declaredLength(h: http2.IncomingHttpHeaders): number | undefined {
  const v = h['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
