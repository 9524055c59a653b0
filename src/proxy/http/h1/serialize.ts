// meshlet's HTTP/1.1 serializer: heads, chunk headers and trailer sections as latin1
// strings for the socket side to write. Nothing that could change where a message ends is
// ever written: a name that is not a token, or a value with CR, LF or NUL, throws instead
// (so does a character above 0xff, which a latin1 write would cut down to its low byte,
// U+010A to LF).
import { MeshletError } from '../../../errors.ts';
import type { ReceivedHead } from '../../../pipeline/exchange.ts';
import { isToken } from './chars.ts';

export const CRLF = '\r\n';

/** A head or trailer section meshlet refuses to write; `field` names the offending part (a header name, or 'method', 'target', 'reason', 'status', 'chunk size'). */
export class Http1SerializeError extends MeshletError {
  readonly field: string;

  constructor(field: string, problem: string) {
    super('MESHLET_ERR_UPSTREAM_PROTOCOL', `HTTP/1.1: refusing to write ${JSON.stringify(field)}: ${problem}`);
    this.name = 'Http1SerializeError';
    this.field = field;
  }
}

/** A character that must not be written in a field value or reason phrase: CR, LF, NUL, or one a latin1 write would mangle. */
const UNSAFE_IN_VALUE = /[\0\r\n\u0100-\uffff]/;
/** A request-target: one or more visible ASCII characters. */
const TARGET = /^[\x21-\x7e]+$/;

/** Whether a field value or reason phrase may be written (src/proxy/http/h1/chars.ts says why a regular expression). */
function safeValue(s: string): boolean {
  return !UNSAFE_IN_VALUE.test(s);
}

function isTarget(s: string): boolean {
  return TARGET.test(s);
}

const REASONS: Record<number, string> = {
  100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints',
  200: 'OK', 201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
  205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Content Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 417: 'Expectation Failed',
  421: 'Misdirected Request', 422: 'Unprocessable Content', 425: 'Too Early', 426: 'Upgrade Required',
  428: 'Precondition Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout', 505: 'HTTP Version Not Supported', 508: 'Loop Detected',
};

/** The standard reason phrase of a status ('Unknown' for one the table lacks). */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

const NO_FIELDS: readonly string[] = [];

/** How far ahead in the received list an entry is looked for (a layer removed the ones between). */
const LOOKAHEAD = 16;

/**
 * `name: value CRLF` for `firstName: first` (when `first` is given: a request's Host,
 * which is not in its list) and each pair of the flat list `headers`. An entry found in
 * `received` (the list as a parser checked it) at or a little after where the last one was
 * found is not checked again: two regular expression calls per field were the serializer's
 * largest cost (callgrind: about 300 instructions each), and most fields a proxy writes are
 * ones it has just read. With the received text, such entries are written as the lines
 * they were read from, a run of adjacent ones as one slice, instead of joining four strings
 * per field and copying the result into one flat string. The order written is always the
 * list's own.
 */
function fields(headers: readonly string[], received: ReceivedHead | undefined, firstName = '', first?: string): string {
  let out = '';
  const n = headers.length;
  if (n % 2 !== 0) throw new Http1SerializeError(String(headers[n - 1]), 'header list has a name without a value');
  if (received === undefined) {
    if (first !== undefined) out += field(firstName, first);
    for (let i = 0; i < n; i += 2) out += field(headers[i]!, headers[i + 1]!);
    return out;
  }
  const seen = received.fields;
  const m = seen.length;
  const text = received.text;
  // Where the line of seen[j] starts in text; the run of lines not yet written, text[from, at).
  let at = received.start;
  let from = -1;
  let j = 0;
  for (let i = first === undefined ? 0 : -2; i < n; i += 2) {
    const name = i < 0 ? firstName : headers[i]!;
    const value = i < 0 ? first! : headers[i + 1]!;
    const stop = j + LOOKAHEAD < m ? j + LOOKAHEAD : m;
    let k = j;
    while (k < stop && (seen[k] !== name || seen[k + 1] !== value)) k += 2;
    if (k < stop) {
      if (text !== undefined) {
        if (k !== j) {
          if (from !== -1) out += text.slice(from, at);
          // Every line is name, colon, one whitespace character, value, CRLF: the ones skipped are that long.
          for (; j < k; j += 2) at += seen[j]!.length + seen[j + 1]!.length + 4;
          from = at;
        } else if (from === -1) from = at;
        at += name.length + value.length + 4;
        j = k + 2;
        continue;
      }
      j = k + 2;
    } else check(name, value);
    if (from !== -1) {
      out += text!.slice(from, at);
      from = -1;
    }
    out += name + ': ' + value + CRLF;
  }
  if (from !== -1) out += text!.slice(from, at);
  return out;
}

/**
 * Names found to be tokens, up to TOKENS_KEPT of them: the fields a writer checks are the
 * ones the proxy added (X-Request-Id on nearly every request, a sampled one's trace
 * headers), the same few literals every message, whose hash V8 keeps, so a set lookup
 * costs less than the regular expression (callgrind, the outbound sidecar: the token
 * expression's 400 instructions a request became 45 of set lookup).
 */
const TOKENS = new Set<string>();
const TOKENS_KEPT = 64;

function check(name: string, value: string): void {
  if (!TOKENS.has(name)) {
    if (!isToken(name)) throw new Http1SerializeError(name, 'header name is not a token');
    if (TOKENS.size < TOKENS_KEPT) TOKENS.add(name);
  }
  if (!safeValue(value)) throw new Http1SerializeError(name, 'header value contains CR, LF, NUL or a character above 0xff');
}

function field(name: string, value: string): string {
  check(name, value);
  return name + ': ' + value + CRLF;
}

/**
 * `METHOD SP target SP HTTP/1.1 CRLF` + fields + CRLF: the Host field first when `host`
 * is given (named `hostName`), then `headers`, then `extra` (the fields the sender adds,
 * so that the message's own list is written as it is, never copied to append to it).
 * `received`: see fields().
 */
export function requestHead(method: string, target: string, headers: readonly string[], extra = NO_FIELDS, host?: string, hostName = 'Host', received?: ReceivedHead): string {
  if ((received === undefined || method !== received.method) && !isToken(method)) throw new Http1SerializeError('method', 'not a token');
  if ((received === undefined || target !== received.target) && !isTarget(target)) throw new Http1SerializeError('target', 'empty, or not visible ASCII');
  return method + ' ' + target + ' HTTP/1.1\r\n' + fields(headers, received, hostName, host) + fields(extra, undefined) + CRLF;
}

/** `HTTP/1.1 status reason CRLF` + fields of `headers` then `extra` + CRLF; an empty reason becomes the standard phrase. `received`: see fields(). */
export function responseHead(status: number, reason: string, headers: readonly string[], extra = NO_FIELDS, received?: ReceivedHead): string {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new Http1SerializeError('status', `${status} is not a 3-digit status code`);
  if ((received === undefined || reason !== received.reason) && !safeValue(reason)) throw new Http1SerializeError('reason', 'contains CR, LF, NUL or a character above 0xff');
  return 'HTTP/1.1 ' + status + ' ' + (reason === '' ? reasonPhrase(status) : reason) + CRLF + fields(headers, received) + fields(extra, undefined) + CRLF;
}

/** The last-chunk and trailer section that end a chunked body: `0 CRLF` + fields + CRLF. */
export function trailerBlock(trailers: string[]): string {
  return trailers.length === 0 ? '0\r\n\r\n' : '0\r\n' + fields(trailers, undefined) + CRLF;
}

/** The chunk-size line ahead of `length` bytes of chunk data (which CRLF follows). Never 0: that is the last-chunk, written by trailerBlock(). */
export function chunkHeader(length: number): string {
  if (!Number.isSafeInteger(length) || length <= 0) throw new Http1SerializeError('chunk size', `${length} is not a positive integer`);
  return length.toString(16) + CRLF;
}
