import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { SockitError } from '../errors.js';
import { type DecoderOptions, FrameDecoder, FrameError } from '../protocol/decoder.js';
import { FrameBatch } from '../protocol/encoder.js';
import { type BodyEdit, bodyParts, errorHeader, type Frame, type FrameHeader } from '../protocol/frame.js';
import { CLOSE_GRACE_MS, endWithin } from './close-grace.js';
import { stopReading } from './descriptor-relay.js';
import { leaseOf, type ReadLease, releaseLease, retainLease, takeReadBuffer } from './read-pool.js';
import { readTlsIntoBuffers } from './reused-buffer.js';

/**
 * Bytes buffered in decoders, shared by the sockets of one server: a socket holding part of a
 * frame stops reading while the total is over budget, and reads again when told it may.
 */
export interface ReadBudget {
  /** Adds `delta` bytes (negative: released) to the total. */
  charge(delta: number): void;
  /** Whether the total is over budget now. */
  readonly exceeded: boolean;
  /** Over budget: whether `holder` may read on anyway; if not, `resume` is called once it may. */
  mayRead(holder: object, resume: () => void): boolean;
  /** `holder` holds no partial frame any more (it finished its frame, or closed). */
  release(holder: object): void;
}

export interface FramedSocketOptions extends DecoderOptions {
  /** Decode nothing more while our own writes wait for `drain` (servers: answers nobody reads). */
  stopReadingWhileWriteBlocked?: boolean;
  /**
   * A frame whose first bytes arrived must be complete this long after, or the connection ends
   * with TIMEOUT (onFrameError): a peer dribbling one frame cannot hold the socket. 0 = no limit.
   */
  frameTimeoutMs?: number;
  /** After `end()`, the peer has this long to close before the socket is destroyed. Default 5 s. */
  closeGraceMs?: number;
  /** The server-wide budget of buffered bytes this socket counts against. */
  budget?: ReadBudget | undefined;
}

/** What a FramedSocket reports to its owner (the server connection or the client). */
export interface FramedSocketEvents {
  /**
   * One decoded frame. Returning a promise applies backpressure: the socket is paused and no
   * further frame is decoded until it settles (a slow disk write, a child's full stdin).
   */
  onFrame(frame: Frame): void | Promise<void>;
  /** The peer broke the framing rules; the socket is already being closed. */
  onFrameError(error: FrameError): void;
  /** The socket is closed; `error` is set when it ended abnormally. */
  onClose(error: Error | undefined): void;
}

/**
 * A socket that carries frames: decodes what arrives, encodes what is sent, and joins the two
 * kinds of backpressure. Frames sent while one read is handled, or within one tick, are encoded
 * back to back into one batch (`protocol/encoder.ts`) and leave in one write, so pipelined
 * requests and their answers cost one system call per read rather than one per frame.
 */
export class FramedSocket {
  readonly socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #events: FramedSocketEvents;
  #blocked = false;
  /** Encoded frames not yet written: flushed when a read's handlers return, else on a microtask. */
  readonly #batch = new FrameBatch();
  /** Whether a flush is due: the read being handled will flush, or a microtask is queued. */
  #flushDue = false;
  #closed = false;
  #ending = false;
  readonly #stopReadingWhileWriteBlocked: boolean;
  #closeError: Error | undefined;
  #drain: Promise<void> | undefined;
  #activity = 0;
  readonly #frameTimeoutMs: number;
  readonly #closeGraceMs: number;
  #frameTimer: NodeJS.Timeout | undefined;
  readonly #budget: ReadBudget | undefined;
  /** Bytes this socket has charged to the budget (its decoder's buffer when last counted). */
  #charged = 0;
  /** Paused because the budget is exceeded while this socket holds part of a frame. */
  #overBudget = false;
  /** Reads go into recycled buffers (recycleReads): frames with bytes in them get `release`. */
  #recycling = false;
  /** Chunks pushed into the decoder so far, recycled or not. */
  #pushed = 0;
  /** Recycled buffers the decoder may still hold, oldest first, with the push count of each. */
  readonly #decoderHolds: { lease: ReadLease; seq: number }[] = [];

  constructor(socket: Socket, events: FramedSocketEvents, options: FramedSocketOptions = {}) {
    this.socket = socket;
    this.#stopReadingWhileWriteBlocked = options.stopReadingWhileWriteBlocked ?? false;
    this.#events = events;
    this.#decoder = new FrameDecoder(options);
    this.#frameTimeoutMs = options.frameTimeoutMs ?? 0;
    this.#closeGraceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
    this.#budget = options.budget;
    socket.setNoDelay(true);
    socket.on('data', this.#onChunk);
    socket.on('error', (error) => {
      this.#closeError ??= error;
    });
    socket.on('close', () => {
      this.#closed = true;
      clearTimeout(this.#frameTimer);
      this.#budget?.charge(-this.#charged);
      this.#budget?.release(this);
      this.#charged = 0;
      this.#dropDecoderHolds(0);
      this.#events.onClose(this.#closeError);
    });
  }

  readonly #onChunk = (chunk: Buffer): void => {
    if (this.#ending) return; // after end(), the peer's bytes are read only to see its FIN
    this.#decoder.push(chunk);
    if (chunk.length > 0) this.#pushed++; // as the decoder counts them (heldChunks)
    // Replies to this chunk's frames leave together as soon as the handlers return.
    this.#flushDue = true;
    this.#pump();
    this.#flushBatch();
  };

  /**
   * From now on a TLS socket's records are decrypted into recycled buffers
   * (transport/read-pool.ts), and frames whose body lies in them carry `release`. Costs one
   * 16 KiB buffer held while the connection is idle, so servers call it only once a connection
   * has authenticated. Returns false, changing nothing, on a plain socket (Node reads 64 KiB at
   * a time there, more than one pooled buffer) or when the switch is not possible now.
   */
  recycleReads(): boolean {
    const socket = this.socket;
    if (this.#recycling || this.closed || this.#ending || this.#blocked || this.#overBudget) return false;
    if (!(socket instanceof TLSSocket)) return false;
    this.#recycling = readTlsIntoBuffers(socket, takeReadBuffer, (chunk) => {
      if (!this.#ending) {
        // The decoder's hold on the buffer: dropped once it has used up the chunk (#pump).
        const lease = leaseOf(chunk)!;
        retainLease(lease);
        this.#decoderHolds.push({ lease, seq: this.#pushed });
      }
      this.#onChunk(chunk);
      return true; // pausing is this class's own business (#waitFor, the budget), as with 'data'
    });
    return this.#recycling;
  }

  /** Grows with every frame received and every write: what idle timeouts watch (idle = no frame). */
  get activity(): number {
    return this.#activity;
  }

  /** Bytes sent on this connection and not yet handed to the kernel (encoded frames included). */
  get writableLength(): number {
    return this.socket.writableLength + this.#batch.bytes;
  }

  get closed(): boolean {
    return this.#closed || this.socket.destroyed;
  }

  /**
   * Sends one frame; `id`, when given, replaces the header's own; `edit` changes the body's
   * bytes as they are encoded. Returns false when the caller should wait for `drained()`.
   */
  send(header: FrameHeader, body?: Uint8Array, id?: number, edit?: BodyEdit): boolean {
    if (this.closed || !this.socket.writable) return false;
    this.#batch.add(header, body, id, edit);
    if (!this.#flushDue) {
      this.#flushDue = true;
      queueMicrotask(this.#flushBatch);
    }
    return this.writableLength < this.socket.writableHighWaterMark;
  }

  /** Resolves when the socket's write buffer has drained; rejects with CLOSED if it closes first. */
  drained(): Promise<void> {
    if (this.closed) return Promise.reject(new SockitError('CLOSED', 'connection closed'));
    // Frames still in the batch count against the mark (send() says so): they go to the socket
    // now, so that the wait covers them instead of resolving before they were written at all.
    this.#flushBatch();
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    this.#drain ??= new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.#drain = undefined;
        if (this.closed) reject(new SockitError('CLOSED', 'connection closed'));
        else resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
    return this.#drain;
  }

  /** Sends a frame and waits until the socket can take more: the simple way to respect backpressure. */
  async write(header: FrameHeader, body?: Uint8Array): Promise<void> {
    if (this.closed) throw new SockitError('CLOSED', 'connection closed');
    if (!this.send(header, body)) await this.drained();
  }

  /** Sends a connection error (an `error` frame without id) and closes after it is flushed. */
  closeWithError(code: string, message: string, extra?: Record<string, unknown>): void {
    if (this.closed) return;
    this.send(errorHeader(code, message, undefined, extra));
    this.end();
  }

  /**
   * Closes our side after pending writes; the peer's close then completes it. The socket is
   * destroyed `graceMs` (default: the closeGraceMs option) from now whatever the peer does (keeps its side open, keeps sending).
   * Called again with a shorter grace, the shorter one wins.
   */
  end(chunk?: string, graceMs: number = this.#closeGraceMs): void {
    if (this.closed) return;
    if (!this.#ending) {
      this.#ending = true;
      clearTimeout(this.#frameTimer);
      this.#flushBatch();
    }
    // Reads go on (and are dropped) so the peer's FIN is seen and the socket can close.
    this.#overBudget = false;
    endWithin(this.socket, graceMs, chunk);
  }

  destroy(error?: Error): void {
    this.#closeError ??= error;
    this.socket.destroy();
  }

  /**
   * Sends `last` as the final frame and gives the socket up to raw bytes (a data channel): no
   * frame is decoded or sent after it. Resolves with the socket, paused, once `last` and all
   * before it are in the kernel; its close is still reported to onClose. Rejects (FRAME_INVALID)
   * when the peer already sent bytes past its last frame, which it must not before it read `last`.
   */
  release(last: FrameHeader): Promise<Socket> {
    this.#blocked = true;
    this.#ending = true;
    clearTimeout(this.#frameTimer);
    // From now on the descriptor is the new owner's to read; Node must not take a byte of it.
    const early = stopReading(this.socket);
    if (this.#decoder.bufferedBytes > 0 || early.length > 0) {
      this.destroy();
      return Promise.reject(new FrameError('FRAME_INVALID', 'bytes arrived before the channel was joined'));
    }
    this.#batch.add(last);
    const single = this.#batch.takeSingle();
    const bytes = single ?? Buffer.concat(this.#batch.take());
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error) => {
        if (error || this.closed) reject(error ?? new SockitError('CLOSED', 'connection closed'));
        else resolve(this.socket);
      });
    });
  }

  readonly #flushBatch = (): void => {
    if (!this.#flushDue) return;
    this.#flushDue = false;
    if (this.#batch.bytes === 0) return;
    const single = this.#batch.takeSingle();
    const parts = single === undefined ? this.#batch.take() : undefined;
    if (this.socket.destroyed) return;
    this.#activity++;
    if (parts === undefined || parts.length === 1) {
      this.socket.write(single ?? parts![0]!);
      return;
    }
    // Only a large body (passed on uncopied) or another connection's frames in the shared slab
    // split a batch: the parts still leave in one writev.
    this.socket.cork();
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
  };

  #pump(): void {
    while (!this.#blocked && !this.#closed) {
      // Outgoing backpressure (server side): a peer that sends requests but does not read the
      // answers stops being read too, instead of growing the write buffer without bound. Only
      // one side may do this, or two peers writing at once could each wait for the other to read.
      if (this.#stopReadingWhileWriteBlocked && this.socket.writableNeedDrain) {
        this.#waitFor(this.drained());
        break;
      }
      let frame: Frame | undefined;
      try {
        frame = this.#decoder.next();
      } catch (error) {
        this.#fail(error as FrameError);
        return;
      }
      if (frame === undefined) break;
      this.#activity++;
      if (this.#recycling) this.#offerRelease(frame);
      let pending: void | Promise<void>;
      try {
        pending = this.#events.onFrame(frame);
      } catch (error) {
        // The owner handles its own failures; anything that escapes ends this connection only.
        this.destroy(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (pending !== undefined) this.#waitFor(pending);
    }
    this.#afterPump();
  }

  /**
   * A frame with body bytes in recycled buffers holds each of them until its consumer calls
   * `release` (once: later calls do nothing); a consumer that never does leaves them to the GC.
   */
  #offerRelease(frame: Frame): void {
    if (frame.parts === undefined && frame.body.length === 0) return; // no body: nothing held
    const held: ReadLease[] = [];
    for (const part of bodyParts(frame)) {
      const lease = leaseOf(part);
      if (lease === undefined || held.includes(lease)) continue;
      retainLease(lease);
      held.push(lease);
    }
    if (held.length === 0) return;
    frame.release = () => {
      frame.release = undefined;
      for (const lease of held) releaseLease(lease);
    };
  }

  /** Drops the decoder's hold on the recycled buffers pushed before the `keep` it still holds. */
  #dropDecoderHolds(keep: number): void {
    const holds = this.#decoderHolds;
    const firstHeld = this.#pushed - keep;
    while (holds.length > 0 && holds[0]!.seq < firstHeld) releaseLease(holds.shift()!.lease);
  }

  /** Stops reading and reports a framing violation (or a stalled frame) to the owner. */
  #fail(error: FrameError): void {
    this.#blocked = true;
    clearTimeout(this.#frameTimer);
    this.socket.pause();
    this.#events.onFrameError(error);
  }

  /** After decoding what could be: the stalled-frame deadline and the shared budget. */
  #afterPump(): void {
    if (this.#recycling) this.#dropDecoderHolds(this.#decoder.heldChunks);
    if (this.#closed || this.#ending) return;
    const buffered = this.#decoder.bufferedBytes;
    // The deadline runs only while the peer owes us bytes of a started frame: not between
    // frames, and not while we are the ones not reading (a slow handler, answers not read).
    if (this.#decoder.idle || this.#blocked) {
      clearTimeout(this.#frameTimer);
      this.#frameTimer = undefined;
    } else if (this.#frameTimer === undefined && this.#frameTimeoutMs > 0) {
      this.#frameTimer = setTimeout(() => {
        this.#fail(
          new FrameError('TIMEOUT', `a frame was started and not finished within ${this.#frameTimeoutMs} ms`),
        );
      }, this.#frameTimeoutMs);
    }
    const budget = this.#budget;
    if (budget === undefined) return;
    budget.charge(buffered - this.#charged);
    this.#charged = buffered;
    if (buffered === 0) {
      budget.release(this);
      return;
    }
    if (!budget.exceeded || this.#overBudget) return;
    const resume = (): void => {
      if (!this.#overBudget) return;
      this.#overBudget = false;
      this.#resumeReading();
    };
    if (!budget.mayRead(this, resume)) {
      this.#overBudget = true;
      this.socket.pause();
    }
  }

  #resumeReading(): void {
    if (this.#blocked || this.#overBudget || this.#closed) return;
    this.socket.resume();
  }

  #waitFor(pending: Promise<void>): void {
    this.#blocked = true;
    this.socket.pause();
    const resume = (): void => {
      this.#blocked = false;
      if (this.#closed) return;
      this.#resumeReading();
      this.#pump();
    };
    pending.then(resume, (error: unknown) => {
      this.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  }
}

export { FrameError };
