import http2 from 'node:http2';
import type net from 'node:net';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

// What every HTTP/2 session meshlet opens or accepts has in common (docs/http.md, "HTTP/2").

/**
 * Receive windows, both ends of every hop. A stream window is what the sender may have in
 * flight on one stream, and so what the proxy may come to hold for a stream whose next hop
 * is slower than the one before it (4 MiB until measured: 1000 such streams on a session
 * could hold 4 GB). The connection window is what all streams of a session may have in
 * flight together; it holds nothing, since node:http2 takes connection-level data off the
 * window as it arrives, whatever the streams' readers do. node:http2 leaves it at 65,535
 * bytes whatever the settings say, which held each session, and so every stream between
 * two pods, to 64 KiB per round trip. Figures in docs/http.md.
 */
export const STREAM_WINDOW = 256 * 1024;
export const CONNECTION_WINDOW = 4 * 1024 * 1024;

/**
 * node:http2 refuses new streams with ENHANCE_YOUR_CALM once a session holds more than
 * `maxSessionMemory` (10 MB by default), counting the data written to its streams and not
 * yet sent, and after 100 refusals it destroys the session with every stream on it. Between
 * two sidecars one session carries every request between the two pods, and a writer may
 * queue up to a stream's writable high-water mark (64 KiB) plus one chunk (at most 64 KiB,
 * one socket read) before backpressure stops it: 1000 streams with a slow reader are past
 * 10 MB. The limit is set above what that backpressure allows, so it never cuts traffic
 * meshlet itself keeps bounded; memory is bounded by the windows and those queues.
 */
const QUEUED_PER_STREAM = 128 * 1024;
const BASE_SESSION_MB = 10;

/** maxSessionMemory (node:http2 counts in megabytes of 10^6 bytes) for a session with up to `maxStreams` concurrent streams. */
export function sessionMemoryMb(maxStreams: number): number {
  return BASE_SESSION_MB + Math.ceil((maxStreams * QUEUED_PER_STREAM) / 1e6);
}

/**
 * Ends a session whose peer has closed its side of the connection (TCP FIN, with or
 * without GOAWAY first). node:http2 does not watch its socket's end: on the half-open
 * sockets meshlet uses (listeners, mesh connections, h2c upstream) the session would stay
 * open for ever, every stream on it waiting, and the pool would go on handing it out. On a
 * socket that is not half-open, net closes it instead and node:http2 resets every stream,
 * even one whose response had arrived whole and still waits in memory for a slow reader.
 * Here nothing more can arrive, and nothing sent is sure to be read (nor even sent: a
 * peer that stopped reading leaves writes, and so a graceful close, pending for ever). A
 * stream that ended whole in both directions is read to its end (a response that arrived
 * whole reaches a slow client whole); every other one is reset (CANCEL) and the session is
 * destroyed once the whole ones are read. `socket` must be half-open (allowHalfOpen) and
 * `open` the session's open streams.
 */
export function endWithPeer(session: http2.Http2Session, socket: net.Socket, open: ReadonlySet<http2.Http2Stream>, onEnd?: () => void): void {
  socket.once('end', () => {
    onEnd?.();
    let whole = 0;
    const destroyAfterWhole = () => {
      if (--whole === 0) session.destroy();
    };
    for (const stream of open) {
      // closed with NO_ERROR: nghttp2 is done with it, both END_STREAMs crossed; its data may still wait to be read.
      if (stream.closed && stream.rstCode === NGHTTP2_NO_ERROR) {
        whole++;
        stream.once('close', destroyAfterWhole);
      } else if (!stream.closed) stream.close(NGHTTP2_CANCEL);
    }
    if (whole === 0) session.destroy();
  });
}
