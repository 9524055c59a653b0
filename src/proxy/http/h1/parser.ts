// meshlet's own HTTP/1.1 parser (RFC 9112): bytes in, events out, no sockets. Strict on
// everything that decides where a message ends, so that nothing meshlet forwards can be
// framed differently by the next hop (request smuggling, response splitting).
//
// The common case is a whole small head in one read: decoded once as latin1 (with what
// follows it, up to PEEK bytes), its end found in that string, its field lines checked and
// cut in one loop over the read's bytes; a line that loop does not take goes through the
// per-line checks, which name the failure. A head split over reads is kept as
// pieces of its last incomplete line, so a head that trickles in byte by byte costs linear
// time. Bodies are handed on as subarrays of the input, never copied.
//
// Errors are positional and do not depend on how the bytes were split: lines are checked
// in order, each only once complete; a line is refused for size before its content is
// looked at, so the failure reported for an input is the same however it arrives.

// Imported rather than read as globals: Node's global Buffer and performance are accessors, each read a call (about 170 instructions in callgrind's count).
import { Buffer } from 'node:buffer';
import { MeshletError } from '../../../errors.ts';
import type { ReceivedHead } from '../../../pipeline/exchange.ts';
import { lengthOf } from '../../../strings.ts';
import { HOP_BY_HOP, MARKS_INCOMPLETE, MESH_HEADERS, MESH_METADATA_HEADER } from '../headers.ts';
import { AUTHORITY, FIELD, HEX, QDTEXT, TCHAR } from './chars.ts';
import { RecentValues } from './recent-values.ts';

/** Why a message was refused; stable strings (listed in docs/http.md by the socket-side engineer). */
export type ParseFailure =
  | 'invalid_method' | 'invalid_target' | 'invalid_version' | 'invalid_status'
  | 'invalid_header_name' | 'invalid_header_value' | 'obs_fold' | 'bare_cr' | 'bare_lf'
  | 'head_too_large' | 'too_many_headers'
  | 'duplicate_content_length' | 'invalid_content_length' | 'content_length_and_transfer_encoding'
  | 'transfer_encoding_not_chunked' | 'invalid_transfer_encoding'
  | 'invalid_chunk_size' | 'chunk_size_too_large' | 'invalid_chunk_extension' | 'invalid_chunk_end' | 'trailers_too_large'
  | 'missing_host' /* never raised: meshlet accepts HTTP/1.1 without Host (docs/http.md) */
  | 'incomplete_message';

const FAILURE_TEXT: Record<ParseFailure, string> = {
  invalid_method: 'invalid method',
  invalid_target: 'invalid request-target',
  invalid_version: 'invalid HTTP version',
  invalid_status: 'invalid status line',
  invalid_header_name: 'invalid header field name',
  invalid_header_value: 'invalid character in a header field value',
  obs_fold: 'obsolete line folding',
  bare_cr: 'CR not followed by LF',
  bare_lf: 'LF not preceded by CR',
  head_too_large: 'head too large',
  too_many_headers: 'too many header fields',
  duplicate_content_length: 'more than one Content-Length',
  invalid_content_length: 'invalid Content-Length',
  content_length_and_transfer_encoding: 'both Content-Length and Transfer-Encoding',
  transfer_encoding_not_chunked: 'Transfer-Encoding does not end in chunked',
  invalid_transfer_encoding: 'invalid Transfer-Encoding',
  invalid_chunk_size: 'invalid chunk size',
  chunk_size_too_large: 'chunk size too large',
  invalid_chunk_extension: 'invalid chunk extension',
  invalid_chunk_end: 'chunk data not followed by CRLF',
  trailers_too_large: 'trailer section too large',
  missing_host: 'no Host header',
  incomplete_message: 'connection closed before the end of the message',
};

export class Http1ParseError extends MeshletError {
  readonly failure: ParseFailure;
  /** Which parser refused the input. */
  readonly kind: 'request' | 'response';

  constructor(failure: ParseFailure, kind: 'request' | 'response') {
    const code =
      kind === 'response'
        ? 'MESHLET_ERR_UPSTREAM_PROTOCOL'
        : failure === 'head_too_large' || failure === 'too_many_headers'
          ? 'MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE'
          : 'MESHLET_ERR_BAD_REQUEST';
    super(code, `HTTP/1.1 ${kind} refused: ${FAILURE_TEXT[failure]} (${failure})`);
    this.name = 'Http1ParseError';
    this.failure = failure;
    this.kind = kind;
  }
}

/**
 * A head as read. It is also what the writer of the message passed on is given as the
 * message's ReceivedHead (`received` on the pipeline's request and response): method,
 * target and reason are those fields, and `fields`, `text` and `start` say what the
 * parser checked and where the lines were read from.
 */
export interface Head extends ReceivedHead {
  /** Request only ('' on responses). As received; a token. */
  method: string;
  /** Request only: the request-target as received (origin-form, absolute-form, authority-form for CONNECT, '*' for OPTIONS). */
  target: string;
  /** Response only (0 on requests). */
  status: number;
  /** Response only: reason phrase as received, may be ''. */
  reason: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. Anything else is invalid_version (HTTP/2.0 preface etc. included). */
  versionMinor: 0 | 1;
  /** Flat [name, value, name, value, ...] as received: names keep case and order, duplicates kept, values without leading/trailing OWS. */
  headers: string[];
  /** How the body is delimited, after RFC 9112 section 6 rules. 'eof' only for responses (no CL, no chunked, not bodiless). */
  framing: 'none' | 'length' | 'chunked' | 'eof';
  /** Body length when framing === 'length' (>0); 0 otherwise. */
  contentLength: number;
  /**
   * Whether the connection may carry another message after this one (HTTP/1.1 without
   * `Connection: close`; HTTP/1.0 with `Connection: keep-alive`). Always false with 'eof'
   * framing. After a message without it, the parser ignores whatever follows (RFC 9112
   * 9.6: no further request is processed).
   */
  keepAlive: boolean;
  /**
   * Request: an `Upgrade` header together with a Connection header listing `upgrade`, or
   * method CONNECT. Response: status 101, or a 2xx to a CONNECT. After such a head the
   * parser stops (no onBody, no onMessageEnd): the rest of the bytes belong to the tunnel
   * (takeBuffered()).
   */
  upgrade: boolean;
  /** Request only: `Expect: 100-continue` (case-insensitive). */
  expectContinue: boolean;
  /**
   * The fields that belong to this connection rather than to the message, as a bit per
   * field (bit i: headers[2i]), found while the names were read, so that nothing after the
   * parser compares names to find them: the hop-by-hop ones (RFC 9110 7.6.1), the mesh's
   * own (meshlet-*), and a request's Host. MARKS_INCOMPLETE when the bits cannot say
   * (one beyond the 30th field, or a Connection header that names other fields): then
   * only a filter by name can (headers.ts endToEndMarked).
   */
  marks: number;
  /** Where in `headers` the first Host name is (-1: none), and how many there are (requests only). */
  hostAt: number;
  hosts: number;
  /** Where in `headers` the first meshlet-peer-metadata and Content-Type names are (-1: none). */
  metadataAt: number;
  contentTypeAt: number;
}

/** Fields past this many are not marked. */
const MARKED_FIELDS = 30;

export interface ParserEvents {
  /**
   * A complete head. Return false to pause the parser right after it (it buffers whatever
   * follows until resume()). A 1xx interim response (not 101) has no onBody and no
   * onMessageEnd: the next onHead is the final response.
   */
  onHead(head: Head): boolean | void;
  /** Body bytes (chunked framing already decoded): zero-copy subarrays of the input where possible (copies with bodiesCopied). Never called with an empty buffer. */
  onBody(chunk: Buffer): void;
  /** The message is complete; trailers (flat raw list, [] when none). Return false to pause before parsing the next message (pipelining). */
  onMessageEnd(trailers: string[]): boolean | void;
  /** The input is not valid; the parser accepts nothing more afterwards. */
  onError(err: Http1ParseError): void;
}

export interface ParserLimits {
  /** Request line / status line + header fields, including CRLFs (e.g. 60 KiB). Exceeding it: head_too_large. Counted as bytes arrive, so a never-ending head is refused once it passes the limit, not buffered without bound. */
  maxHeadBytes: number;
  /** Number of header fields (e.g. 100, Envoy's default). */
  maxHeaders: number;
}

/** Bytes of chunk extensions allowed on one chunk-size line. */
export const MAX_CHUNK_EXTENSION_BYTES = 4096;
/** Empty lines (CRLF) accepted before a request line or status line (RFC 9112 2.2). */
export const MAX_LEADING_EMPTY_LINES = 2;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** Bytes of a read decoded at once in the hope that they hold a whole head. */
const PEEK = 512;
const EMPTY = Buffer.alloc(0);

/** Case-insensitive comparison of s[a, a + lit.length) with a lower-case literal of letters and '-' (s holds a token, so `| 0x20` is exact). */
function eqLower(s: string, a: number, lit: string): boolean {
  for (let i = 0; i < lit.length; i++) if ((s.charCodeAt(a + i) | 0x20) !== lit.charCodeAt(i)) return false;
  return true;
}

function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

// ---- the field names the parser acts on (addField) ----
const K_CONTENT_LENGTH = 1;
const K_TRANSFER_ENCODING = 2;
const K_HOST = 3;
const K_EXPECT = 4;
const K_UPGRADE = 5;
const K_CONNECTION = 6;
const K_CONTENT_TYPE = 7;
const K_MESH_METADATA = 8;
/** The other hop-by-hop names (RFC 9110 7.6.1) and the mesh's own: marked only (Head.marks). */
const K_MARK = 9;

/**
 * By shape, (length << 5 | first character & 31), `& 31` folding a letter's case: which
 * K_ name a field's name can be (0: none), and that name's bytes, lower case.
 */
const KIND_BY_SHAPE = new Uint8Array(32 * 32);
const NAME_BY_SHAPE: Uint8Array[] = [];
{
  const known = new Map<string, number>([
    ['content-length', K_CONTENT_LENGTH],
    ['transfer-encoding', K_TRANSFER_ENCODING],
    ['host', K_HOST],
    ['expect', K_EXPECT],
    ['upgrade', K_UPGRADE],
    ['connection', K_CONNECTION],
    ['content-type', K_CONTENT_TYPE],
    [MESH_METADATA_HEADER, K_MESH_METADATA],
  ]);
  for (const name of [...HOP_BY_HOP, ...MESH_HEADERS]) if (!known.has(name)) known.set(name, K_MARK);
  const names: string[] = [];
  for (const [name, kind] of known) {
    const shape = (name.length << 5) | (name.charCodeAt(0) & 31);
    if (KIND_BY_SHAPE[shape] !== 0) throw new Error(`${name} has the length and first letter of ${names[shape]}`);
    KIND_BY_SHAPE[shape] = kind;
    NAME_BY_SHAPE[shape] = Buffer.from(name, 'latin1');
    names[shape] = name;
  }
}
/** Request authorities: one string for the same bytes, whatever the connection (recent-values.ts). */
const RECENT_HOSTS = new RecentValues(8);

const CLOSE = Buffer.from('close', 'latin1');
const KEEP_ALIVE = Buffer.from('keep-alive', 'latin1');
const UPGRADE = Buffer.from('upgrade', 'latin1');
const CONTINUE_100 = Buffer.from('100-continue', 'latin1');

/** A copy of buf[from, to): one Buffer and a native copy, where `Buffer.from` of a view makes two Buffers. */
function copyOf(buf: Buffer, from: number, to: number): Buffer {
  const copy = Buffer.allocUnsafe(to - from);
  buf.copy(copy, 0, from, to);
  return copy;
}

/**
 * Whether b[at, at + lower.length) is `lower` (lower-case letters, digits and '-') in any
 * case. The bytes are a token's or a field value's: `| 0x20` maps no other such byte onto
 * a letter, a digit or '-'.
 */
function bytesAre(b: Buffer, at: number, lower: Uint8Array): boolean {
  const n = lower.length;
  for (let i = 0; i < n; i++) if ((b[at + i]! | 0x20) !== lower[i]) return false;
  return true;
}

// ---- parser states ----
const S_HEAD = 0; // reading a head (request line / status line and fields)
const S_LENGTH = 1; // Content-Length body
const S_CHUNK_LINE = 2; // chunk-size line (byte by byte; `cs` says where)
const S_CHUNK_DATA = 3;
const S_CHUNK_END = 4; // the CRLF after chunk data (`cs`: 0 before CR, 1 before LF)
const S_TRAILERS = 5; // trailer section (line based, like a head)
const S_EOF = 6; // body until the connection closes
const S_END = 7; // a message whose onMessageEnd is due (no body, or paused before it)
const S_UPGRADED = 8; // after an upgrade head: bytes are only buffered
const S_CLOSED = 9; // after a message without keep-alive, or after finish(): input ignored
const S_DEAD = 10; // after an error

// chunk-size line sub-states
const CS_SIZE = 0;
const CS_EXT_NAME_START = 1;
const CS_EXT_NAME = 2;
const CS_EXT_VALUE_START = 3;
const CS_EXT_VALUE = 4;
const CS_EXT_QUOTED = 5;
const CS_EXT_QUOTED_PAIR = 6;
const CS_EXT_QUOTED_DONE = 7;
const CS_LF = 8;

export class Http1Parser {
  private readonly isRequest: boolean;
  private readonly kind: 'request' | 'response';
  private readonly events: ParserEvents;
  private readonly maxHeadBytes: number;
  private readonly maxHeaders: number;

  private state = S_HEAD;
  private paused = false;
  private running = false;
  private ended = false;
  /** Bytes received and not yet consumed (while paused, upgraded, or fed during a callback). */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Response parser: the method of the request the next response answers, and of the pipelined ones after it (most connections have one at a time, which needs no array). */
  private expectedNext: string | undefined;
  private readonly expectedMore: string[] = [];

  // Line-based sections (head, trailers): the pieces of the incomplete last line, bytes so far.
  private frag: Buffer[] = [];
  private fragLen = 0;
  private sectionBytes = 0;
  private sectionDone = false;
  private leadingEmpty = 0;
  /** A response parser got a 1xx interim head and waits for the final one. */
  private awaitingFinal = false;

  // The message being read.
  private startSeen = false;
  private method = '';
  private target = '';
  private status = 0;
  private reason = '';
  private minor: 0 | 1 = 1;
  private fields: string[] = [];
  /** The string the head's field lines were read from, while they follow each other in it, each `name:` OWS `value` CRLF with one whitespace character. */
  private text: string | undefined;
  /** Where the first field line starts in `text`, and where the last one so far ends. */
  private textStart = 0;
  private textEnd = 0;
  private plainLines = true;
  private clCount = 0;
  private clValue = '';
  private contentLength = 0;
  /** Transfer-Encoding values in order (checked with Content-Length at the end of the head, after every line's syntax). */
  private teValues: string[] | undefined;
  private te = false;
  private teTrailingTab = false;
  private teChunked = false;
  private teChunkedLast = false;
  private connClose = false;
  private connKeepAlive = false;
  private connUpgrade = false;
  private hasUpgrade = false;
  private expectContinue = false;
  private marks = 0;
  private hostAt = -1;
  /**
   * Where the Host value's bytes are while the input holding them is being run: the buffer
   * and the offset (its length is the value's). A head that ends in the same input gets its
   * Host value from RECENT_HOSTS; one that spans inputs keeps the value it was parsed as.
   */
  private hostBytes: Buffer | undefined = undefined;
  private hostByte = 0;
  private hosts = 0;
  private metadataAt = -1;
  private contentTypeAt = -1;
  private keepAlive = true;

  // Bodies.
  private remaining = 0;
  private cs = CS_SIZE;
  private chunkDigits = 0;
  private chunkSize = 0;
  private chunkExtBytes = 0;

  constructor(kind: 'request' | 'response', events: ParserEvents, limits: ParserLimits) {
    this.kind = kind;
    this.isRequest = kind === 'request';
    this.events = events;
    this.maxHeadBytes = limits.maxHeadBytes;
    this.maxHeaders = limits.maxHeaders;
  }

  /**
   * onBody gets copies of the body bytes, not views of the input: for a caller that reads
   * into one buffer it reuses, and must keep what it hands on.
   */
  bodiesCopied = false;

  /** True between messages with nothing buffered. */
  get idle(): boolean {
    return this.state === S_HEAD && !this.inHead() && this.pendingLen === 0;
  }

  /** True while a message (head or body) is partly received. */
  get inMessage(): boolean {
    const s = this.state;
    if (s === S_HEAD) return this.inHead();
    return s === S_LENGTH || s === S_CHUNK_LINE || s === S_CHUNK_DATA || s === S_CHUNK_END || s === S_TRAILERS || s === S_EOF || s === S_END;
  }

  /** True once the parser takes no more messages: after an error, after finish(), or after a message without keep-alive. Not after an upgrade (see `upgraded`). */
  get closed(): boolean {
    return this.state === S_CLOSED || this.state === S_DEAD;
  }

  /** True after an upgrade head: whatever follows belongs to the tunnel (takeBuffered()). */
  get upgraded(): boolean {
    return this.state === S_UPGRADED;
  }

  /**
   * Feeds bytes. Incremental: a head split over many calls, many pipelined messages in one
   * call, bodies as their bytes arrive. While paused, bytes are only buffered. The parser
   * keeps no reference to `data` once execute() returns (what it must keep, it copies), so
   * the caller may reuse its read buffer; onBody's chunks are views valid during the call.
   * Only data[0, end) is read: a caller reading into a buffer of its own passes the buffer
   * and the bytes read, and makes no view of it per read.
   */
  execute(data: Buffer, end: number = data.length): void {
    const s = this.state;
    if (s === S_DEAD || s === S_CLOSED || end === 0) return;
    if (this.paused || this.running || s === S_UPGRADED) {
      this.pending.push(copyOf(data, 0, end));
      this.pendingLen += end;
      return;
    }
    this.drive(data, end);
  }

  pause(): void {
    this.paused = true;
  }

  /** Continues with buffered bytes (synchronously, may fire events). */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running) return; // the loop that is running goes on by itself
    const pending = this.state === S_UPGRADED ? EMPTY : this.takePending();
    this.drive(pending, pending.length);
  }

  /** Response parser only: the method of the request the next response answers (HEAD: no body; CONNECT + 2xx: upgrade). Call before feeding that response. 1xx interim responses (100, 103) are delivered through onHead with framing 'none' and do NOT consume the expectation: the final response follows. 101 is final (upgrade). Several calls queue up, in order, for pipelined requests. */
  expect(method: string): void {
    if (this.expectedNext === undefined) this.expectedNext = method;
    else this.expectedMore.push(method);
  }

  /** The peer closed its side. 'eof' framing ends the message (onMessageEnd); a message cut short raises incomplete_message; between messages it is a no-op. While paused, this happens once the buffered bytes are parsed (on resume()). */
  finish(): void {
    const s = this.state;
    if (s === S_DEAD || s === S_CLOSED || s === S_UPGRADED) return;
    this.ended = true;
    if (!this.paused && !this.running) this.applyFinish();
  }

  /** Bytes received but not consumed (after an upgrade head, or while paused); the parser forgets them. */
  takeBuffered(): Buffer {
    return this.takePending();
  }

  // ---- driving ----

  private takePending(): Buffer {
    const p = this.pending;
    if (p.length === 0) return EMPTY;
    const out = p.length === 1 ? p[0]! : Buffer.concat(p, this.pendingLen);
    this.pending = [];
    this.pendingLen = 0;
    return out;
  }

  private drive(first: Buffer, firstEnd: number): void {
    this.running = true;
    try {
      let buf = first;
      let end = firstEnd;
      for (;;) {
        this.run(buf, end);
        this.hostBytes = undefined; // the bytes of the next run are elsewhere
        const s = this.state;
        if (this.paused || s === S_DEAD || s === S_CLOSED || s === S_UPGRADED || this.pendingLen === 0) break;
        buf = this.takePending(); // fed during a callback
        end = buf.length;
      }
    } finally {
      this.running = false;
    }
    if (this.ended && !this.paused) this.applyFinish();
  }

  private applyFinish(): void {
    const s = this.state;
    if (s === S_DEAD || s === S_CLOSED || s === S_UPGRADED) return;
    if (s === S_EOF) {
      this.state = S_CLOSED;
      this.events.onMessageEnd([]);
    } else if (this.inMessage) {
      this.fail('incomplete_message');
    } else {
      this.state = S_CLOSED;
    }
  }

  /** Body bytes buf[from, to) for onBody: a view, or a copy when bodiesCopied. */
  private bodyChunk(buf: Buffer, from: number, to: number): Buffer {
    if (this.bodiesCopied) return copyOf(buf, from, to);
    return from === 0 && to === buf.length ? buf : buf.subarray(from, to);
  }

  /** Parses buf[0, len); whatever is left when the parser pauses, upgrades or closes goes to `pending` (ahead of bytes fed meanwhile). */
  private run(buf: Buffer, len: number): void {
    let off = 0;
    for (;;) {
      if (this.paused) break;
      const s = this.state;
      if (s === S_END) {
        this.endMessage([]);
        continue;
      }
      if (off >= len || s === S_UPGRADED || s === S_CLOSED || s === S_DEAD) break;
      switch (s) {
        case S_HEAD:
        case S_TRAILERS:
          off = this.section(buf, off, len);
          if (off < 0) return; // error
          if (this.sectionDone) {
            if (s === S_HEAD) this.headDone();
            else this.endMessage(this.fields);
          }
          break;
        case S_LENGTH: {
          const n = Math.min(this.remaining, len - off);
          const chunk = this.bodyChunk(buf, off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = S_END;
          this.events.onBody(chunk);
          break;
        }
        case S_CHUNK_DATA: {
          const n = Math.min(this.remaining, len - off);
          const chunk = this.bodyChunk(buf, off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = S_CHUNK_END;
            this.cs = 0;
          }
          this.events.onBody(chunk);
          break;
        }
        case S_CHUNK_END:
          if (this.cs === 0) {
            if (buf[off] !== 13) return this.fail('invalid_chunk_end');
            this.cs = 1;
            off++;
          } else {
            if (buf[off] !== 10) return this.fail('invalid_chunk_end');
            off++;
            this.startChunkLine();
          }
          break;
        case S_CHUNK_LINE:
          off = this.chunkLine(buf, off, len);
          if (off < 0) return;
          break;
        case S_EOF: {
          const chunk = this.bodyChunk(buf, off, len);
          off = len;
          this.events.onBody(chunk);
          break;
        }
      }
    }
    // The loop stops short of the end only when paused, upgraded, closed or refused.
    if (off < len && this.state !== S_DEAD && this.state !== S_CLOSED) {
      this.pending.unshift(copyOf(buf, off, len));
      this.pendingLen += len - off;
    }
  }

  private fail(failure: ParseFailure): void {
    this.state = S_DEAD;
    this.pending = [];
    this.pendingLen = 0;
    this.frag = [];
    this.fragLen = 0;
    this.fields = [];
    this.events.onError(new Http1ParseError(failure, this.kind));
  }

  private inHead(): boolean {
    return this.startSeen || this.fragLen > 0 || this.awaitingFinal;
  }

  // ---- heads and trailer sections (line based) ----

  /** The request's Host value, the same string as the last requests' with the same bytes (recent-values.ts). */
  private internHost(b: Buffer): void {
    this.hostBytes = undefined;
    const at = this.hostAt + 1;
    const value = this.fields[at]!;
    this.fields[at] = RECENT_HOSTS.intern(b, this.hostByte, lengthOf(value), value);
  }

  private resetMessage(): void {
    this.startSeen = false;
    this.text = undefined;
    this.plainLines = true;
    this.sectionBytes = 0;
    this.sectionDone = false;
    this.leadingEmpty = 0;
    this.method = '';
    this.target = '';
    this.status = 0;
    this.reason = '';
    this.minor = 1;
    this.clCount = 0;
    this.clValue = '';
    this.contentLength = 0;
    this.teValues = undefined;
    this.te = false;
    this.teTrailingTab = false;
    this.teChunked = false;
    this.teChunkedLast = false;
    this.connClose = false;
    this.connKeepAlive = false;
    this.connUpgrade = false;
    this.hasUpgrade = false;
    this.expectContinue = false;
    this.marks = 0;
    this.hostAt = -1;
    this.hostBytes = undefined;
    this.hosts = 0;
    this.metadataAt = -1;
    this.contentTypeAt = -1;
  }

  /**
   * Reads complete lines of the current section from buf at off. Returns the offset after
   * the last line consumed (all of buf when its end is an incomplete line, kept in `frag`),
   * or -1 after an error. Sets sectionDone at the section's empty line.
   */
  private section(buf: Buffer, off: number, len: number): number {
    if (this.fragLen > 0) {
      const lf = buf.indexOf(10, off);
      if (lf === -1 || lf >= len) return this.addFrag(buf, off, len);
      this.frag.push(buf.subarray(off, lf + 1));
      const bytes = Buffer.concat(this.frag, this.fragLen + lf + 1 - off);
      const line = bytes.toString('latin1');
      this.frag = [];
      this.fragLen = 0;
      this.line(line, 0, line.length - 1, bytes, 0);
      if (this.state === S_DEAD) return -1;
      off = lf + 1;
      if (this.sectionDone) return off;
    }
    while (off < len) {
      let end: number; // the region [off, end) holds complete lines only
      let s: string; // it, decoded, maybe with bytes after it
      if (buf[off] === 13 && off + 1 < len && buf[off + 1] === 10) {
        end = off + 2; // an empty line at once: the end of a section (most trailer sections)
        s = '\r\n';
      } else {
        const limitEnd = off + this.maxHeadBytes - this.sectionBytes;
        // Most heads are whole and short: decoded with what follows, up to PEEK bytes, and
        // their end found in the string, which costs less than a search of the Buffer.
        s = buf.toString('latin1', off, Math.min(len, limitEnd, off + PEEK));
        const e = s.indexOf('\r\n\r\n');
        if (e !== -1) {
          end = off + e + 4;
        } else {
          const e = buf.indexOf(CRLFCRLF, off);
          if (e !== -1 && e + 4 <= limitEnd && e + 4 <= len) {
            end = e + 4;
          } else {
            const stop = Math.min(len, limitEnd);
            end = stop > off ? buf.lastIndexOf(10, stop - 1) + 1 : 0;
            if (end <= off) return this.addFrag(buf, off, len);
          }
          s = buf.toString('latin1', off, end);
        }
      }
      const n = end - off;
      let p = 0;
      while (p < n) {
        if (this.startSeen || this.state === S_TRAILERS) {
          p = this.fieldLines(s, p, n, buf, off);
          if (this.state === S_DEAD) return -1;
          if (this.sectionDone) return off + p;
          if (p === n) break;
        }
        const lf = s.indexOf('\n', p);
        this.line(s, p, lf, buf, off);
        if (this.state === S_DEAD) return -1;
        p = lf + 1;
        if (this.sectionDone) return off + p;
      }
      off = end;
    }
    return off;
  }

  private addFrag(buf: Buffer, off: number, len: number): number {
    const piece = copyOf(buf, off, len);
    this.frag.push(piece);
    this.fragLen += piece.length;
    if (this.sectionBytes + this.fragLen >= this.maxHeadBytes) {
      this.fail(this.state === S_TRAILERS ? 'trailers_too_large' : 'head_too_large');
      return -1;
    }
    return len;
  }

  /** One line of a head or trailer section: s[a, lf] where s[lf] is its LF; the same characters are the bytes of `b` from a + d. */
  private line(s: string, a: number, lf: number, b: Buffer, d: number): void {
    const trailers = this.state === S_TRAILERS;
    this.sectionBytes += lf + 1 - a;
    const empty = lf === a || (lf === a + 1 && s.charCodeAt(a) === 13);
    if (empty ? this.sectionBytes > this.maxHeadBytes : this.sectionBytes >= this.maxHeadBytes) {
      return this.fail(trailers ? 'trailers_too_large' : 'head_too_large');
    }
    if (lf === a || s.charCodeAt(lf - 1) !== 13) return this.fail('bare_lf');
    const end = lf - 1;
    if (end === a) {
      if (!trailers && !this.startSeen) {
        if (++this.leadingEmpty > MAX_LEADING_EMPTY_LINES) this.fail(this.isRequest ? 'invalid_method' : 'invalid_version');
        return;
      }
      this.sectionDone = true;
      return;
    }
    if (trailers || this.startSeen) this.field(s, a, end, trailers, b, d);
    else if (this.isRequest) this.requestLine(s, a, end);
    else this.statusLine(s, a, end);
  }

  /** Refuses a line; a CR inside it makes the failure bare_cr, whatever else is wrong. */
  private failLine(s: string, a: number, end: number, failure: ParseFailure): void {
    const cr = s.indexOf('\r', a);
    this.fail(cr !== -1 && cr < end ? 'bare_cr' : failure);
  }

  private requestLine(s: string, a: number, end: number): void {
    let i = a;
    while (i < end && TCHAR[s.charCodeAt(i)] === 1) i++;
    if (i === a || i === end || s.charCodeAt(i) !== 32) return this.failLine(s, a, end, 'invalid_method');
    const ts = i + 1;
    let j = ts;
    let c = 0;
    while (j < end && (c = s.charCodeAt(j)) > 32 && c < 127) j++;
    if (j === end) return this.failLine(s, a, end, j === ts ? 'invalid_target' : 'invalid_version'); // no version (HTTP/0.9)
    if (j === ts || c !== 32) return this.failLine(s, a, end, 'invalid_target');
    const v = j + 1;
    const minor = s.charCodeAt(v + 7) - 48;
    if (end - v !== 8 || !s.startsWith('HTTP/1.', v) || (minor !== 0 && minor !== 1)) return this.failLine(s, a, end, 'invalid_version');
    const method = s.slice(a, i);
    if (!validTarget(s, ts, j, method)) return this.fail('invalid_target');
    this.method = method;
    this.target = s.slice(ts, j);
    this.minor = minor;
    this.fields = [];
    this.startSeen = true;
  }

  private statusLine(s: string, a: number, end: number): void {
    const minor = s.charCodeAt(a + 7) - 48;
    if (end - a < 9 || !s.startsWith('HTTP/1.', a) || (minor !== 0 && minor !== 1) || s.charCodeAt(a + 8) !== 32) {
      return this.failLine(s, a, end, 'invalid_version');
    }
    const d0 = s.charCodeAt(a + 9) - 48;
    const d1 = s.charCodeAt(a + 10) - 48;
    const d2 = s.charCodeAt(a + 11) - 48;
    if (end - a < 12 || !(d0 >= 1 && d0 <= 5) || !(d1 >= 0 && d1 <= 9) || !(d2 >= 0 && d2 <= 9)) {
      return this.failLine(s, a, end, 'invalid_status');
    }
    let reason = '';
    if (end > a + 12) {
      if (s.charCodeAt(a + 12) !== 32) return this.failLine(s, a, end, 'invalid_status');
      for (let i = a + 13; i < end; i++) if (FIELD[s.charCodeAt(i)] !== 1) return this.failLine(s, a, end, 'invalid_status');
      reason = s.slice(a + 13, end);
    }
    this.status = d0 * 100 + d1 * 10 + d2;
    this.reason = reason;
    this.minor = minor;
    this.fields = [];
    this.startSeen = true;
  }

  /**
   * One field line s[a, end) (end is its CR). Its characters are checked as the bytes of
   * `b` (b[k + d] is s[k]): in V8's optimised code a byte load from a Buffer costs less
   * than a char load from a string, and the fields are most of a head.
   */
  private field(s: string, a: number, end: number, trailers: boolean, b: Buffer, d: number): void {
    const first = a + d;
    const last = end + d;
    const c0 = b[first]!;
    if (c0 === 32 || c0 === 9) return this.failLine(s, a, end, 'obs_fold');
    let k = first;
    while (k < last && TCHAR[b[k]!] === 1) k++;
    if (k === first || k === last || b[k] !== 58) return this.failLine(s, a, end, 'invalid_header_name');
    let vk = k + 1;
    while (vk < last && isOws(b[vk]!)) vk++;
    let vEnd = vk;
    for (let j = vk; j < last; j++) {
      const c = b[j]!;
      if (FIELD[c] !== 1) return this.fail(c === 13 ? 'bare_cr' : 'invalid_header_value');
      if (c !== 32 && c !== 9) vEnd = j + 1;
    }
    this.plainLines = false; // lines the per-line checks read are written anew
    this.addField(s, a, k - d, vk - d, vEnd - d, end, trailers, b, d);
  }

  /**
   * The well-formed field lines of s[p, n), read from their bytes (b[k + d] is s[k]):
   * a name of tchar, a colon, field-vchar / SP / HTAB / obs-text up to CRLF. Returns where
   * they end: past the empty line, which ends the section (sectionDone), or at the first
   * line the per-line checks must see (one that is refused, or would reach the size
   * limit), which then run as before, so the failure reported is the same. Either way that
   * line ends the section or the message, so no line is read twice. One loop over the bytes checks each line and finds its colon
   * and its CR; it replaced a regular expression over the string followed by two indexOf
   * calls per line (callgrind: 14 000 -> 12 300 instructions for a five-field response,
   * 12 100 -> 10 100 for a five-field request), where a loop over the string's characters
   * had cost more than the expression.
   */
  private fieldLines(s: string, p: number, n: number, b: Buffer, d: number): number {
    const trailers = this.state === S_TRAILERS;
    const before = this.fields.length;
    // The imported tables in locals: V8 otherwise loads each from its module cell, with a
    // hole and map check, at every line.
    const tchar = TCHAR;
    const field = FIELD;
    let a = p;
    let after = -1; // past the section's empty line, when it was read here
    // s[p, n) holds complete lines, each ending in LF, so no line read here ends past n.
    while (a < n) {
      const first = a + d;
      let k = first;
      while (tchar[b[k]!] === 1) k++;
      if (k === first || b[k] !== 58) {
        // The empty line ends the section here, without a search for its LF, unless it reaches the size limit (the per-line checks report that).
        if (k === first && b[k] === 13 && b[k + 1] === 10 && this.sectionBytes + 2 <= this.maxHeadBytes) {
          this.sectionBytes += 2;
          this.sectionDone = true;
          after = a + 2;
        }
        break;
      }
      const colon = k - d;
      k++;
      let c = b[k]!;
      while (c === 32 || c === 9) c = b[++k]!;
      const vs = k - d;
      while (field[b[k]!] === 1) k++;
      if (b[k] !== 13 || b[k + 1] !== 10) break;
      const cr = k - d;
      let last = k; // after the value's last byte that is not OWS
      while (last > vs + d && ((c = b[last - 1]!) === 32 || c === 9)) last--;
      if (this.sectionBytes + (cr + 2 - a) >= this.maxHeadBytes) break;
      this.sectionBytes += cr + 2 - a;
      const ve = last - d;
      if (vs !== colon + 2 || ve !== cr) this.plainLines = false;
      this.addField(s, a, colon, vs, ve, cr, trailers, b, d);
      if (this.state === S_DEAD) return a;
      a = cr + 2;
    }
    // A head's lines are forwardable as they came (Head.text) while they follow each other in one string.
    if (!trailers && a > p) {
      if (before === 0) {
        this.text = s;
        this.textStart = p;
      } else if (this.text !== s || p !== this.textEnd) this.plainLines = false;
      this.textEnd = a;
    }
    return after === -1 ? a : after;
  }

  /** A checked field line s[a, end): its name is s[a, i), its value s[vs, ve) (without OWS); b[k + d] is s[k]. */
  private addField(s: string, a: number, i: number, vs: number, ve: number, end: number, trailers: boolean, b: Buffer, d: number): void {
    if (this.fields.length >= this.maxHeaders * 2) return this.fail(trailers ? 'trailers_too_large' : 'too_many_headers');
    const value = s.slice(vs, ve);
    // Two stores at the end rather than push(name, value), which V8 left as a call to its builtin.
    const fields = this.fields;
    const n = fields.length;
    fields[n] = s.slice(a, i);
    fields[n + 1] = value;
    // The few names the parser acts on are found by length and first letter, then compared
    // once, as bytes (a string's characters cost V8 a dispatch on its representation each:
    // callgrind counted 37 instructions a character); the rest cost a table load. Kept out
    // of line, the actions leave this function small enough for V8 to inline into the
    // field-line loop.
    const length = i - a;
    if (length < 32) {
      const shape = (length << 5) | (b[a + d]! & 31);
      const known = KIND_BY_SHAPE[shape]!;
      if (known !== 0 && bytesAre(b, a + d, NAME_BY_SHAPE[shape]!)) this.knownField(known, n, value, vs + d, end + d, trailers, b);
    }
  }

  /**
   * A field whose name is one of kind `known` (K_*), at fields[n]: its value is `value`,
   * the bytes b[vb, vb + value.length); its line's CR is b[cr].
   */
  private knownField(known: number, n: number, value: string, vb: number, cr: number, trailers: boolean, b: Buffer): void {
    switch (known) {
      case K_CONTENT_LENGTH:
        // In a trailer section a framing field is refused: the body is already delimited.
        if (trailers) return this.fail('content_length_and_transfer_encoding');
        if (++this.clCount === 1) this.clValue = value;
        return;
      case K_TRANSFER_ENCODING:
        if (trailers) return this.fail('invalid_transfer_encoding');
        (this.teValues ??= []).push(value);
        this.mark(n);
        // A tab after the last coding: llhttp then reads `chunked\t` as another coding
        // than chunked, so no reading of it is safe.
        for (let j = vb + value.length; j < cr; j++) if (b[j] === 9) this.teTrailingTab = true;
        return;
    }
    if (trailers) return; // the rest mean something in a head only
    switch (known) {
      case K_HOST:
        if (!this.isRequest) return; // an end-to-end field in a response
        if (this.hosts++ === 0) {
          this.hostAt = n;
          this.hostBytes = b;
          this.hostByte = vb;
        }
        this.mark(n);
        return;
      case K_EXPECT:
        if (value.length === 12 && bytesAre(b, vb, CONTINUE_100)) this.expectContinue = true;
        return;
      case K_UPGRADE:
        this.hasUpgrade = true;
        this.mark(n);
        return;
      case K_CONNECTION:
        this.connection(value, b, vb);
        this.mark(n);
        return;
      case K_CONTENT_TYPE:
        if (this.contentTypeAt === -1) this.contentTypeAt = n;
        return;
      case K_MESH_METADATA:
        if (this.metadataAt === -1) this.metadataAt = n;
        this.mark(n);
        return;
      default: // K_MARK
        this.mark(n);
    }
  }

  /** Marks the field whose name is at fields[n] (Head.marks). */
  private mark(n: number): void {
    const field = n >>> 1;
    this.marks |= field < MARKED_FIELDS ? 1 << field : MARKS_INCOMPLETE;
  }

  /** 1*DIGIT, at most Number.MAX_SAFE_INTEGER; false after an error. */
  private contentLengthValue(v: string): boolean {
    const n = v.length;
    let x = 0;
    if (n === 0 || n > 16) x = -1;
    for (let i = 0; i < n && x >= 0; i++) {
      const d = v.charCodeAt(i) - 48;
      x = d < 0 || d > 9 ? -1 : x * 10 + d;
    }
    if (x < 0 || x > Number.MAX_SAFE_INTEGER) {
      this.fail('invalid_content_length');
      return false;
    }
    this.contentLength = x;
    return true;
  }

  /** transfer-coding list, combined over fields in order: each element a token with optional parameters; chunked at most once, without parameters. False after an error. */
  private transferEncoding(v: string): boolean {
    this.te = true;
    let p = 0;
    const n = v.length;
    if (n === 0) return this.teFail();
    for (;;) {
      while (p < n && isOws(v.charCodeAt(p))) p++;
      const ts = p;
      while (p < n && TCHAR[v.charCodeAt(p)] === 1) p++;
      if (p === ts) return this.teFail(); // empty element or not a token
      const chunked = p - ts === 7 && eqLower(v, ts, 'chunked');
      let q = p;
      while (q < n && isOws(v.charCodeAt(q))) q++;
      if (q < n && v.charCodeAt(q) === 59) {
        // ;parameters: not on chunked; otherwise token, '=', ';', OWS and quoted strings, no comma
        if (chunked) return this.teFail();
        while (q < n && v.charCodeAt(q) !== 44) {
          const c = v.charCodeAt(q);
          if (TCHAR[c] !== 1 && c !== 59 && c !== 61 && c !== 34 && !isOws(c)) return this.teFail();
          q++;
        }
      }
      if (chunked) {
        if (this.teChunked) return this.teFail();
        this.teChunked = true;
      }
      this.teChunkedLast = chunked;
      if (q >= n) return true;
      if (v.charCodeAt(q) !== 44) return this.teFail();
      p = q + 1;
    }
  }

  private teFail(): false {
    this.fail('invalid_transfer_encoding');
    return false;
  }

  /** A Connection value: close, keep-alive and upgrade as flags; any other name makes the marks incomplete (it names a field to drop). */
  private connection(v: string, b: Buffer, vb: number): void {
    const n = v.length;
    if (n === 5 && bytesAre(b, vb, CLOSE)) this.connClose = true;
    else if (n === 10 && bytesAre(b, vb, KEEP_ALIVE)) this.connKeepAlive = true;
    else if (n === 7 && bytesAre(b, vb, UPGRADE)) this.connUpgrade = true;
    else {
      for (const raw of v.split(',')) {
        const t = raw.trim().toLowerCase();
        if (t === 'close') this.connClose = true;
        else if (t === 'keep-alive') this.connKeepAlive = true;
        else if (t === 'upgrade') this.connUpgrade = true;
        else if (t !== '') this.marks |= MARKS_INCOMPLETE;
      }
    }
  }

  /** The head's empty line: framing (RFC 9112 6.3), then onHead. */
  private headDone(): void {
    if (this.hostBytes !== undefined) this.internHost(this.hostBytes);
    const minor = this.minor;
    if (this.clCount > 1) return this.fail('duplicate_content_length');
    if (this.clCount === 1 && !this.contentLengthValue(this.clValue)) return;
    if (this.teValues !== undefined) {
      if (this.teTrailingTab) return this.fail('invalid_transfer_encoding');
      for (const v of this.teValues) if (!this.transferEncoding(v)) return;
    }
    if (this.te) {
      // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
      if (minor === 0) return this.fail('invalid_transfer_encoding');
      if (this.clCount > 0) return this.fail('content_length_and_transfer_encoding');
    }
    let framing: Head['framing'];
    let upgrade = false;
    let interim = false;
    if (this.isRequest) {
      if (this.te) {
        if (!this.teChunkedLast) return this.fail('transfer_encoding_not_chunked');
        framing = 'chunked';
      } else framing = this.contentLength > 0 ? 'length' : 'none';
      upgrade = this.method === 'CONNECT' || (this.hasUpgrade && this.connUpgrade);
    } else {
      const status = this.status;
      const method = this.expectedNext;
      if (status < 200) {
        framing = 'none';
        upgrade = status === 101;
        interim = !upgrade;
      } else if (status === 204 || status === 304 || method === 'HEAD') {
        framing = 'none';
      } else if (method === 'CONNECT' && status < 300) {
        framing = 'none';
        upgrade = true;
      } else if (this.te) {
        framing = this.teChunkedLast ? 'chunked' : 'eof';
      } else if (this.clCount > 0) {
        framing = this.contentLength > 0 ? 'length' : 'none';
      } else framing = 'eof';
      if (!interim) this.expectedNext = this.expectedMore.length > 0 ? this.expectedMore.shift() : undefined;
    }
    const keepAlive = framing !== 'eof' && !this.connClose && (minor === 1 || this.connKeepAlive);
    const head: Head = {
      method: this.method,
      target: this.target,
      status: this.status,
      reason: this.reason,
      versionMinor: minor,
      headers: this.fields,
      fields: this.fields.slice(),
      text: this.plainLines ? this.text : undefined,
      start: this.textStart,
      framing,
      contentLength: framing === 'length' ? this.contentLength : 0,
      keepAlive,
      upgrade,
      expectContinue: this.expectContinue,
      marks: this.marks,
      hostAt: this.hostAt,
      hosts: this.hosts,
      metadataAt: this.metadataAt,
      contentTypeAt: this.contentTypeAt,
    };
    this.keepAlive = keepAlive;
    this.resetMessage();
    if (upgrade) this.state = S_UPGRADED;
    else if (interim) {
      this.state = S_HEAD;
      this.awaitingFinal = true;
    } else {
      this.awaitingFinal = false;
      switch (framing) {
        case 'none':
          this.state = S_END;
          break;
        case 'length':
          this.state = S_LENGTH;
          this.remaining = head.contentLength;
          break;
        case 'chunked':
          this.startChunkLine();
          break;
        case 'eof':
          this.state = S_EOF;
          break;
      }
    }
    if (this.events.onHead(head) === false) this.paused = true;
  }

  private endMessage(trailers: string[]): void {
    this.resetMessage();
    this.state = this.keepAlive ? S_HEAD : S_CLOSED;
    if (!this.keepAlive) {
      this.pending = [];
      this.pendingLen = 0;
    }
    if (this.events.onMessageEnd(trailers) === false) this.paused = true;
  }

  // ---- chunked bodies ----

  private startChunkLine(): void {
    this.state = S_CHUNK_LINE;
    this.cs = CS_SIZE;
    this.chunkDigits = 0;
    this.chunkSize = 0;
    this.chunkExtBytes = 0;
  }

  /** chunk-size [ chunk-ext ] CRLF, byte by byte (a few bytes per chunk). Returns the offset after what was consumed, -1 after an error. */
  private chunkLine(buf: Buffer, off: number, len: number): number {
    let cs = this.cs;
    while (off < len) {
      const c = buf[off]!;
      if (cs === CS_SIZE) {
        const h = HEX[c]!;
        if (h >= 0) {
          this.chunkSize = this.chunkSize * 16 + h;
          if (++this.chunkDigits > 15 || this.chunkSize > Number.MAX_SAFE_INTEGER) return this.chunkFail('chunk_size_too_large');
          off++;
          continue;
        }
        if (this.chunkDigits === 0) return this.chunkFail(c === 10 ? 'bare_lf' : 'invalid_chunk_size');
        if (c === 13) cs = CS_LF;
        else if (c === 59) cs = CS_EXT_NAME_START;
        else return this.chunkFail(c === 10 ? 'bare_lf' : 'invalid_chunk_size');
        off++;
        continue;
      }
      if (cs === CS_LF) {
        if (c !== 10) return this.chunkFail('bare_cr');
        off++;
        if (this.chunkSize === 0) {
          this.state = S_TRAILERS;
          this.resetMessage();
          this.fields = [];
          this.startSeen = true;
        } else {
          this.state = S_CHUNK_DATA;
          this.remaining = this.chunkSize;
        }
        return off;
      }
      // chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] ), no whitespace (as llhttp)
      if (++this.chunkExtBytes > MAX_CHUNK_EXTENSION_BYTES) return this.chunkFail('invalid_chunk_extension');
      switch (cs) {
        case CS_EXT_NAME_START:
          if (TCHAR[c] !== 1) return this.chunkFail('invalid_chunk_extension');
          cs = CS_EXT_NAME;
          break;
        case CS_EXT_NAME:
        case CS_EXT_VALUE:
          if (TCHAR[c] === 1) break;
          if (c === 61 && cs === CS_EXT_NAME) cs = CS_EXT_VALUE_START;
          else if (c === 59) cs = CS_EXT_NAME_START;
          else if (c === 13) cs = CS_LF;
          else return this.chunkFail(c === 10 ? 'bare_lf' : 'invalid_chunk_extension');
          break;
        case CS_EXT_VALUE_START:
          if (c === 34) cs = CS_EXT_QUOTED;
          else if (TCHAR[c] === 1) cs = CS_EXT_VALUE;
          else return this.chunkFail('invalid_chunk_extension');
          break;
        case CS_EXT_QUOTED:
          if (c === 34) cs = CS_EXT_QUOTED_DONE;
          else if (c === 92) cs = CS_EXT_QUOTED_PAIR;
          else if (QDTEXT[c] !== 1) return this.chunkFail('invalid_chunk_extension');
          break;
        case CS_EXT_QUOTED_PAIR:
          if (FIELD[c] !== 1) return this.chunkFail('invalid_chunk_extension');
          cs = CS_EXT_QUOTED;
          break;
        case CS_EXT_QUOTED_DONE:
          if (c === 59) cs = CS_EXT_NAME_START;
          else if (c === 13) cs = CS_LF;
          else return this.chunkFail(c === 10 ? 'bare_lf' : 'invalid_chunk_extension');
          break;
      }
      off++;
    }
    this.cs = cs;
    return off;
  }

  private chunkFail(failure: ParseFailure): number {
    this.fail(failure);
    return -1;
  }
}

/**
 * The request-target's form (RFC 9112 3.2), no looser than llhttp: origin-form starts
 * with '/'; '*' alone, for OPTIONS; absolute-form is letters "://" authority [ '/' or '?'
 * then anything visible ]; CONNECT takes authority-form, host ":" port. Characters were
 * already checked to be visible ASCII.
 */
function validTarget(s: string, a: number, end: number, method: string): boolean {
  const c0 = s.charCodeAt(a);
  if (method === 'CONNECT') {
    // host ":" port; host may be an IP literal in brackets; no userinfo
    let colon = -1;
    for (let i = a; i < end; i++) {
      const c = s.charCodeAt(i);
      if (AUTHORITY[c] !== 1) return false;
      if (c === 58) colon = i;
    }
    if (colon <= a || colon === end - 1) return false;
    for (let i = colon + 1; i < end; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) return false;
    }
    return true;
  }
  if (c0 === 47) return true;
  if (c0 === 42) return end - a === 1 && method === 'OPTIONS';
  // absolute-form
  let i = a;
  while (i < end && ((s.charCodeAt(i) | 0x20) >= 97 && (s.charCodeAt(i) | 0x20) <= 122)) i++;
  if (i === a || !s.startsWith('://', i)) return false;
  i += 3;
  const hs = i;
  let at = false;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 47 || c === 63) break;
    if (c === 64) {
      if (at) return false;
      at = true;
    } else if (AUTHORITY[c] !== 1) return false;
  }
  return i > hs;
}
