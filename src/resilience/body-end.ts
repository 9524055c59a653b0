import type { Body, BodyAbort, BodySink } from '../pipeline/body.ts';
import type { ProxyResponse } from '../pipeline/exchange.ts';

/**
 * `res` with `done` called once when it is over: at once when it has no body, else when
 * its body ends, aborts or is cancelled (a request holds its slot of a limit until then).
 */
export function onResponseEnd(res: ProxyResponse, done: () => void): ProxyResponse {
  if (res.body === undefined) {
    done();
    return res;
  }
  return { ...res, body: new WatchedBody(res.body, done) };
}

class WatchedBody implements Body {
  readonly length: number | undefined;
  readonly #inner: Body;
  #done: (() => void) | undefined;

  constructor(inner: Body, done: () => void) {
    this.#inner = inner;
    this.length = inner.length;
    this.#done = done;
  }

  pipe(sink: BodySink): void {
    this.#inner.pipe({
      data: (chunk) => sink.data(chunk),
      end: (trailers) => {
        this.#finish();
        sink.end(trailers);
      },
      abort: (err) => {
        this.#finish();
        sink.abort(err);
      },
    });
  }

  resume(): void {
    this.#inner.resume();
  }

  cancel(reason: BodyAbort): void {
    this.#finish();
    this.#inner.cancel(reason);
  }

  #finish(): void {
    const done = this.#done;
    this.#done = undefined;
    done?.();
  }
}
