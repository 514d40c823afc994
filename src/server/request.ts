import { ERROR_CATALOGUE, type ErrorCode, SockitError } from '../errors.js';
import { type BodyEdit, errorHeader, type Frame, type FrameHeader } from '../protocol/frame.js';
import type { ConnectionContext } from './service.js';

/** The parts of a connection a request needs; the server connection implements it. */
export interface RequestOwner {
  readonly context: ConnectionContext;
  /** Sends a frame of request `id` (which replaces the header's own); `edit` changes the body as sent. */
  sendFrame(header: FrameHeader, body: Uint8Array | undefined, id: number, edit?: BodyEdit): boolean;
  drained(): Promise<void>;
  requestFinished(request: ServerRequest): void;
  reportFailure(request: ServerRequest, error: unknown): void;
}

/** A header without the `id`, which the request adds. */
export type ReplyHeader = { type: string; [field: string]: unknown };

/**
 * What a service tells observers (metrics) about a request beyond its final code, set before
 * the request ends: the bytes of a file transfer, the exit status of a command.
 */
export interface RequestOutcome {
  /** File bytes received from the client (put). */
  bytesIn?: number;
  /** File bytes sent to the client (get). */
  bytesOut?: number;
  /** How a command ended: an exit code, or the signal that killed it. */
  exit?: { code: number | null; signal: string | null };
}

/**
 * One open request on a connection. Every frame it sends carries its id. It ends exactly once,
 * by `reply`, `fail` or `finish`; its `signal` aborts on `cancel`, disconnect, or shutdown.
 */
export class ServerRequest {
  readonly id: number;
  readonly header: FrameHeader;
  /** The request's body; a view into socket memory, copy it to keep it past this tick. */
  readonly body: Buffer;
  readonly #owner: RequestOwner;
  /** Created on first use: most requests (echo, stat) never look at their signal. */
  #abort: AbortController | undefined;
  #abortReason: SockitError | undefined;
  /** `onAbort` callbacks: cheaper than an AbortController for a service that only needs to be told. */
  #abortListeners: ((reason: SockitError) => void)[] | undefined;
  #finished = false;
  /** `OK`, or the code `fail` sent: what the request ended with, for metrics. */
  finalCode = 'OK';
  /** Set by services that have more to report than the final code (undefined for most). */
  outcome: RequestOutcome | undefined;
  /** Told once when the request ends (the observer seam: metrics). */
  onFinish: ((request: ServerRequest) => void) | undefined;
  /** Receives this request's follow-up frames; a returned promise pauses the connection. */
  onFrame: ((frame: Frame) => void | Promise<void>) | undefined;

  constructor(frame: Frame, owner: RequestOwner) {
    this.header = frame.header;
    this.id = frame.header.id!;
    this.body = frame.body;
    this.#owner = owner;
  }

  get connection(): ConnectionContext {
    return this.#owner.context;
  }

  /** Aborted when the client cancels, disconnects, or the server's shutdown deadline passes. */
  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#abortReason !== undefined) this.#abort.abort(this.#abortReason);
    }
    return this.#abort.signal;
  }

  /** Whether the request was cancelled, its client left, or the server's deadline passed. */
  get aborted(): boolean {
    return this.#abortReason !== undefined;
  }

  /** Why the request was aborted (see `aborted`), else undefined. */
  get abortReason(): SockitError | undefined {
    return this.#abortReason;
  }

  /**
   * Calls `listener` once when the request is aborted (never if it is not; check `aborted` first:
   * a request aborted already does not call it). What `signal` tells, without creating an
   * AbortController and its EventTarget per request (exec starts one listener per command).
   */
  onAbort(listener: (reason: SockitError) => void): void {
    if (this.#abortReason !== undefined) return;
    if (this.#abortListeners === undefined) this.#abortListeners = [listener];
    else this.#abortListeners.push(listener);
  }

  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Sends a frame of this request. `edit` changes the body's bytes in the copy that is sent
   * (`body` itself is left as it was): a transformed reply without a buffer of its own.
   * False: wait for `drained()` before sending more.
   */
  send(header: ReplyHeader, body?: Uint8Array, edit?: BodyEdit): boolean {
    if (this.#finished) return false;
    return this.#owner.sendFrame(header, body, this.id, edit);
  }

  drained(): Promise<void> {
    return this.#owner.drained();
  }

  /** Sends a frame and waits for the socket to take more. */
  async write(header: ReplyHeader, body?: Uint8Array): Promise<void> {
    if (this.#finished) throw new SockitError('CLOSED', 'request already finished');
    if (!this.send(header, body)) await this.drained();
  }

  /** Sends the final frame (its body changed by `edit`, as `send` does) and ends the request. */
  reply(header: ReplyHeader, body?: Uint8Array, edit?: BodyEdit): void {
    this.send(header, body, edit);
    this.finish();
  }

  /** Sends an error for this request and ends it. A local-only code goes out as INTERNAL. */
  fail(code: ErrorCode, message: string, extra?: Record<string, unknown>): void {
    if (this.#finished) return;
    const wireCode = ERROR_CATALOGUE[code].wire ? code : 'INTERNAL';
    this.finalCode = wireCode;
    this.#owner.sendFrame(errorHeader(wireCode, message, this.id, extra), undefined, this.id);
    this.finish();
  }

  /** Ends the request without sending anything more (its last frame was already sent). */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#owner.requestFinished(this);
    this.onFinish?.(this);
  }

  /** Core use: abort the work of this request with a reason. */
  abort(reason: SockitError): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#abort?.abort(reason);
    const listeners = this.#abortListeners;
    this.#abortListeners = undefined;
    if (listeners) for (const listener of listeners) listener(reason);
  }

  /** Core use: run a handler, turning a thrown error into an error frame for this id. */
  run(handler: (request: ServerRequest) => void | Promise<void>): void {
    try {
      const result = handler(this);
      if (result) result.catch((error: unknown) => this.#owner.reportFailure(this, error));
    } catch (error) {
      this.#owner.reportFailure(this, error);
    }
  }

  /** Core use: deliver a follow-up frame. */
  deliver(frame: Frame): void | Promise<void> {
    const handler = this.onFrame;
    if (!handler) {
      this.fail('BAD_REQUEST', `request ${this.id} does not take "${frame.header.type}" frames`);
      return;
    }
    try {
      const result = handler(frame);
      if (result) {
        return result.catch((error: unknown) => this.#owner.reportFailure(this, error));
      }
    } catch (error) {
      this.#owner.reportFailure(this, error);
    }
  }
}
