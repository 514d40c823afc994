import { cancelled, SockitError } from '../errors.js';
import { CATALOGUE, type RequestAnswer } from '../protocol/catalogue.js';
import { errorFromHeader, type Frame, type FrameHeader } from '../protocol/frame.js';
import type { FramedSocket } from '../transport/framed-socket.js';

export interface RequestOptions {
  /** Fail with TIMEOUT (and cancel on the server) if the request is not done by then. 0 = never. */
  timeoutMs?: number;
  /** Cancels the request when aborted: `done` rejects with CANCELLED, the signal's reason as `cause`. */
  signal?: AbortSignal;
  /**
   * Recognises the frame that ends the request. Default: the final frames the catalogue
   * declares for its type (`exit`, `get-end`, …); one frame for a type it does not know. Errors
   * always end it.
   */
  final?: (header: FrameHeader) => boolean;
}

/** Internal (set by Client.open): rewords a server error with what the client knows. */
export type ExplainError = (error: SockitError) => SockitError;

/**
 * One request in flight on a client connection. Follow-up frames the client sends carry its id
 * (`send`/`write`); frames from the server go to `onFrame` until the final one settles `done`.
 */
export class ClientRequest {
  readonly id: number;
  /** Settles with the final frame, or rejects with the server's error (its code kept). */
  readonly done: Promise<Frame>;
  /** Receives every non-final frame; return a promise to pause the connection until it settles. */
  onFrame: ((frame: Frame) => void | Promise<void>) | undefined;
  readonly #framed: FramedSocket;
  /** The caller's own final-frame test; undefined: the catalogue's (`#answers`). */
  readonly #final: ((header: FrameHeader) => boolean) | undefined;
  /** The answers the catalogue declares for this request's type; undefined for a type it does not know. */
  readonly #answers: ReadonlyMap<string, RequestAnswer> | undefined;
  readonly #release: () => void;
  #resolve!: (frame: Frame) => void;
  #reject!: (error: Error) => void;
  #settled = false;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.cancel(this.#signal?.reason);

  readonly #explain: ExplainError;

  /** The type of the frame that opened it: what its answers are checked against. */
  readonly type: string;

  constructor(
    id: number,
    type: string,
    framed: FramedSocket,
    options: RequestOptions,
    release: () => void,
    explain: ExplainError = (error) => error,
  ) {
    this.#explain = explain;
    this.id = id;
    this.type = type;
    this.#framed = framed;
    this.#final = options.final;
    this.#answers = CATALOGUE.get(type)?.answers;
    this.#release = release;
    this.done = new Promise<Frame>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // A caller that only uses onFrame and never awaits `done` must not see an unhandled rejection.
    this.done.catch(() => {});
    if (options.timeoutMs) {
      const timeoutMs = options.timeoutMs;
      this.#timer = setTimeout(() => {
        this.#sendCancel();
        this.#settle(new SockitError('TIMEOUT', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    if (options.signal) {
      this.#signal = options.signal;
      if (options.signal.aborted) queueMicrotask(this.#onAbort);
      else options.signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  get settled(): boolean {
    return this.#settled;
  }

  /** Sends a follow-up frame of this request. False: wait for `drained()`. */
  send(header: { type: string; [field: string]: unknown }, body?: Uint8Array): boolean {
    return this.#framed.send(header, body, this.id);
  }

  drained(): Promise<void> {
    return this.#framed.drained();
  }

  /** Sends a follow-up frame and waits until the socket can take more. */
  async write(header: { type: string; [field: string]: unknown }, body?: Uint8Array): Promise<void> {
    if (this.#settled) throw new SockitError('CLOSED', `request ${this.id} has already ended`);
    if (!this.send(header, body)) await this.drained();
  }

  /**
   * Asks the server to stop this request; `done` rejects with CANCELLED, `reason` (why the
   * caller gave up) kept as its `cause`.
   */
  cancel(reason?: unknown): void {
    if (this.#settled) return;
    this.#sendCancel();
    this.#settle(cancelled(reason));
  }

  /** Internal: a frame with this id arrived. */
  receive(frame: Frame): void | Promise<void> {
    if (this.#settled) return;
    const { header } = frame;
    // A server that answers with a frame the catalogue does not allow here, or a malformed one,
    // ends the request: nothing it says after that can be trusted to mean what it seems.
    const answer = this.#answers?.get(header.type);
    const problem =
      answer !== undefined
        ? answer.entry.validate(header)
        : CATALOGUE.answerProblem(this.type, this.#answers, header);
    if (problem !== undefined) {
      this.#sendCancel();
      this.#settle(new SockitError('FRAME_INVALID', `the server sent ${problem}`));
      return;
    }
    if (header.type === 'error') {
      this.#settle(this.#explain(errorFromHeader(header, 'the server reported an error')));
      return;
    }
    // Without the caller's test: the catalogue's final frames; one frame ends a type it does not know.
    if (this.#final ? this.#final(header) : answer ? answer.final : this.#answers === undefined) {
      this.#settle(undefined, frame);
      return;
    }
    return this.onFrame?.(frame);
  }

  /** Internal: the connection closed under this request. */
  closedBy(reason: SockitError): void {
    this.#settle(reason);
  }

  #sendCancel(): void {
    if (!this.#framed.closed) this.#framed.send({ type: 'cancel', id: this.id });
  }

  #settle(error: Error | undefined, frame?: Frame): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#release();
    if (error) this.#reject(error);
    else this.#resolve(frame!);
  }
}
