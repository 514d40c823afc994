import type net from 'node:net';
import { SockitError } from '../errors.js';
import { claimHeadroom, FRAME_HEADROOM } from '../protocol/encoder.js';
import { bodyParts, type Frame } from '../protocol/frame.js';
import { TUNNEL_FRAMES, TUNNEL_MAX_DATA } from '../protocol/tunnel.js';
import { readIntoFreshBuffers } from './reused-buffer.js';
import type { TunnelSendAccount, TunnelSendGate } from './tunnel-gate.js';

/** A read buffer: FRAME_HEADROOM free bytes, then room for one full `tunnel-data` body. */
function readBuffer(): Buffer {
  return Buffer.allocUnsafeSlow(FRAME_HEADROOM + TUNNEL_MAX_DATA).subarray(FRAME_HEADROOM);
}

/** Sends one frame of this stream (the caller adds the id). */
export type StreamSend = (header: { type: string; [field: string]: unknown }, body?: Uint8Array) => void;

/**
 * One tunnel stream's end: a local socket joined to the framed connection with credit-based
 * flow control, the way SSH channels do it. We never send more than the peer's window; we
 * grant the peer more only once our socket took the bytes, so a stalled local reader stalls
 * this stream alone and what it can make us hold is bounded by our window. What the streams of
 * one connection queue together is bounded by their TunnelSendGate, which also makes them take
 * turns when the connection is the bottleneck.
 */
export class TunnelStream {
  readonly #socket: net.Socket;
  readonly #send: StreamSend;
  readonly #gate: TunnelSendGate;
  /** Waiting in the gate's line with what we hold. */
  #inLine = false;
  /** What we sent in the gate's rounds. */
  readonly #account: TunnelSendAccount = { round: -1, bytes: 0 };
  /** Our turn in the gate's line: a new round, a fresh quantum for what we hold. */
  readonly #turn = (): void => {
    this.#inLine = false;
    this.#unhold();
  };
  readonly #window: number;
  /** Bytes the peer still lets us send. */
  #credit: number;
  /** Bytes the peer may still send us before our next grant. */
  #allowance: number;
  /** Bytes our socket has written since the last grant. */
  #consumed = 0;
  /** Read from the socket but over the credit: sent when the window opens. */
  #held: Buffer | undefined;
  /** The held bytes are a whole read with its frame headroom still free. */
  #heldFresh = false;
  #localEnded = false;
  #sentEnd = false;
  #peerEnded = false;
  #wroteEnd = false;
  #done = false;
  #onDone: (error: SockitError | undefined) => void;
  /** Bytes each way, for logs. */
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    socket: net.Socket,
    options: {
      send: StreamSend;
      /** The connection's gate, shared by all its streams. */
      gate: TunnelSendGate;
      /** The credit the peer granted us. */
      credit: number;
      /** The credit we granted the peer. */
      window: number;
      onDone: (error: SockitError | undefined) => void;
    },
  ) {
    this.#socket = socket;
    this.#send = options.send;
    this.#gate = options.gate;
    this.#credit = options.credit;
    this.#window = options.window;
    this.#allowance = options.window;
    this.#onDone = options.onDone;
  }

  /** Starts moving bytes (also hands in what was read before the stream opened). */
  start(early?: Buffer): void {
    const socket = this.#socket;
    this.#gate.join(this.#account);
    socket.on('end', () => {
      this.#localEnded = true;
      this.#flushEnd();
    });
    socket.on('error', (error) => this.#finish(new SockitError('CLOSED', error.message, { cause: error })));
    socket.on('close', (hadError) => {
      // Closed after both ways ended cleanly: bytes read but still held for credit go out yet.
      if (this.#done || (!hadError && this.#localEnded)) return;
      this.#finish(new SockitError('CLOSED', 'the local socket closed'));
    });
    if (early !== undefined && early.length > 0) this.#read(early, false);
    // Plain sockets read into buffers with room for the frame header before the bytes, so each
    // `tunnel-data` frame leaves as one buffer (no join before TLS encrypts it); others (a TLS
    // local socket) read with 'data' events.
    const fresh = readIntoFreshBuffers(socket, readBuffer, (chunk) => {
      this.#read(chunk, true);
      return true;
    });
    if (!fresh) socket.on('data', (chunk: Buffer) => this.#read(chunk, false));
    // Early bytes held (over the credit, or waiting in the gate's line): read nothing more until
    // they are sent, or every read would pile onto them.
    if (this.#held === undefined) socket.resume();
    else socket.pause();
  }

  /** A frame of this stream from the peer. */
  onFrame(frame: Frame): void {
    if (this.#done) return;
    const { header } = frame;
    if (header.type === TUNNEL_FRAMES.data) {
      // A body that arrived in pieces (16 KiB TLS records) is written as those pieces, never joined.
      const parts = bodyParts(frame);
      let length = 0;
      for (const part of parts) length += part.length;
      if (this.#peerEnded || length > this.#allowance) {
        this.#finish(new SockitError('BAD_REQUEST', 'the peer sent more than its window'));
        return;
      }
      this.#allowance -= length;
      this.bytesIn += length;
      this.#writeParts(parts, length, frame);
    } else if (header.type === TUNNEL_FRAMES.window) {
      const bytes = header.bytes;
      if (!Number.isInteger(bytes) || (bytes as number) <= 0) {
        this.#finish(new SockitError('BAD_REQUEST', 'tunnel-window needs a positive "bytes"'));
        return;
      }
      this.#credit += bytes as number;
      this.#unhold();
    } else if (header.type === TUNNEL_FRAMES.end) {
      this.#peerEnded = true;
      this.#socket.end(() => {
        this.#wroteEnd = true;
        this.#maybeDone();
      });
    }
  }

  /** Ends the stream at once (a cancel, the connection gone): the local socket is destroyed. */
  abort(error: SockitError): void {
    this.#finish(error);
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Writes a body's pieces to the local socket in one writev; credit is returned once all are
   * out, and so are the read buffers they lie in (`frame.release`): the socket has let go of them.
   */
  #writeParts(parts: readonly Buffer[], length: number, frame: Frame): void {
    const socket = this.#socket;
    const drained = (): void => {
      frame.release?.();
      this.#drained(length);
    };
    if (parts.length === 1) {
      socket.write(parts[0]!, drained);
      return;
    }
    socket.cork();
    const last = parts.length - 1;
    for (let index = 0; index < last; index++) socket.write(parts[index]!);
    socket.write(parts[last]!, drained);
    socket.uncork();
  }

  /** `headroom`: the chunk starts FRAME_HEADROOM bytes into memory of its own (readBuffer). */
  #read(chunk: Buffer, headroom: boolean): void {
    if (this.#done) return;
    if (this.#held !== undefined) {
      // A chunk that was already on its way when we paused: keep it behind the held bytes.
      this.#held = Buffer.concat([this.#held, chunk]);
      this.#heldFresh = false;
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      const allowed = this.#gate.allowance(this.#account);
      if (allowed === 0) {
        // The connection is the bottleneck: keep the rest and wait our turn.
        this.#hold(chunk, offset, headroom);
        this.#inLine = true;
        this.#gate.wait(this.#turn);
        return;
      }
      const size = Math.min(chunk.length - offset, TUNNEL_MAX_DATA, this.#credit, allowed);
      if (size === 0) {
        // Out of credit: keep the rest (at most one socket chunk) until the peer grants more.
        this.#hold(chunk, offset, headroom);
        return;
      }
      const bytes = chunk.subarray(offset, offset + size);
      // Only the first piece has the headroom; later ones follow bytes already sent.
      this.#emit(headroom && offset === 0 ? claimHeadroom(bytes) : bytes);
      offset += size;
    }
  }

  /** Keeps chunk from offset on and stops reading the socket. */
  #hold(chunk: Buffer, offset: number, headroom: boolean): void {
    this.#held = offset === 0 ? chunk : chunk.subarray(offset);
    this.#heldFresh = headroom && offset === 0;
    this.#socket.pause();
  }

  #emit(bytes: Buffer): void {
    this.#credit -= bytes.length;
    this.bytesOut += bytes.length;
    this.#send({ type: TUNNEL_FRAMES.data }, bytes);
    this.#gate.charge(this.#account, bytes.length);
  }

  #unhold(): void {
    const held = this.#held;
    // In the gate's line: a grant of credit waits for our turn too.
    if (held === undefined || this.#inLine) return;
    this.#held = undefined;
    this.#read(held, this.#heldFresh);
    if (this.#done) return;
    if (this.#held === undefined) {
      this.#flushEnd();
      if (!this.#localEnded) this.#socket.resume();
    }
  }

  #drained(length: number): void {
    if (this.#done) return;
    this.#consumed += length;
    // Grants in batches of a quarter window: fewer frames, and the sender never waits on a whole one.
    if (this.#consumed >= this.#window / 4 || this.#peerEnded) {
      const bytes = this.#consumed;
      this.#consumed = 0;
      this.#allowance += bytes;
      if (!this.#peerEnded) this.#send({ type: TUNNEL_FRAMES.window, bytes });
    }
  }

  #flushEnd(): void {
    if (!this.#localEnded || this.#sentEnd || this.#held !== undefined || this.#done) return;
    this.#sentEnd = true;
    this.#send({ type: TUNNEL_FRAMES.end });
    this.#maybeDone();
  }

  #maybeDone(): void {
    if (this.#sentEnd && this.#wroteEnd) this.#finish(undefined);
  }

  #finish(error: SockitError | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#held = undefined;
    this.#gate.leave(this.#turn, this.#account);
    this.#socket.destroy();
    this.#onDone(error);
  }
}
