/**
 * Whether a request was given up (its client went away) and whom to tell. The codecs
 * listen through a field, not an EventTarget: an AbortController and an event listener
 * added and removed per request were a measurable share of the HTTP/1.1 path's
 * allocations and CPU. An AbortSignal is made only for whoever asks for one (node:http2's
 * request option, a layer that passes it to an API).
 */
export class RequestAbort {
  #aborted = false;
  #deadline = false;
  /** The usual single listener, kept without any allocation. */
  #listener: (() => void) | undefined;
  #more: Array<() => void> | undefined;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Aborted because a deadline of the proxy's expired, not because the client went away (a circuit breaker counts the one, not the other). */
  get deadlineExpired(): boolean {
    return this.#deadline;
  }

  /** An AbortSignal that follows this abort. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** `listener` runs once when the request is aborted; at once when it already was. */
  on(listener: () => void): void {
    if (this.#aborted) listener();
    else if (this.#listener === undefined) this.#listener = listener;
    else (this.#more ??= []).push(listener);
  }

  off(listener: () => void): void {
    if (this.#listener === listener) this.#listener = undefined;
    else if (this.#more) {
      const i = this.#more.indexOf(listener);
      if (i >= 0) this.#more.splice(i, 1);
    }
  }

  abort(deadlineExpired = false): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#deadline = deadlineExpired;
    const first = this.#listener;
    const more = this.#more;
    this.#listener = undefined;
    this.#more = undefined;
    first?.();
    if (more) for (const listener of more) listener();
    this.#controller?.abort();
  }
}
