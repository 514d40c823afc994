import type net from 'node:net';
import { SockitError } from '../errors.js';
import { claimHeadroom, FRAME_HEADROOM } from '../protocol/encoder.js';
import { bodyParts, type Frame } from '../protocol/frame.js';
import { TUNNEL_CHANNEL_AFTER_BYTES, TUNNEL_FRAMES, TUNNEL_MAX_DATA } from '../protocol/tunnel.js';
import { descriptorOf, type RelayedDirection, stopReading } from './descriptor-relay.js';
import { readIntoFreshBuffers } from './reused-buffer.js';
import {
  openDescriptor,
  type SealedChannel,
  type SealedDirectionDone,
  sealDescriptor,
} from './sealed-channel.js';
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
 *
 * A stream that turns out long may move the rest of its bytes on a sealed channel (a TLS
 * connection of its own whose records are sealed and opened in C, docs/protocol.md "Sealed
 * channels"): each direction sends `tunnel-switch` as its last frame and goes on there, and its
 * flow control is the channel's own TCP window from then on.
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
  /** Bytes each way in frames. */
  #framedIn = 0;
  #framedOut = 0;
  /** Called once the stream has carried TUNNEL_CHANNEL_AFTER_BYTES in frames (the client asks then). */
  #onLong: (() => void) | undefined;
  /** The sealed channel, once joined. */
  #channel: SealedChannel | undefined;
  /** Whether this end sends `tunnel-switch` as soon as it has the channel (the client) or after the peer's. */
  readonly #switchesFirst: boolean;
  /** We sent `tunnel-switch`: our bytes and our end go on the channel. */
  #switchedOut = false;
  /** The peer sent `tunnel-switch`: its bytes and end come on the channel. */
  #peerSwitched = false;
  #sealing: RelayedDirection | undefined;
  #opening: RelayedDirection | undefined;

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
      /** Called once when the stream has carried TUNNEL_CHANNEL_AFTER_BYTES in frames. */
      onLong?: () => void;
      /** This end switches to a joined channel at once (the client); the other after the peer did. */
      switchesFirst?: boolean;
    },
  ) {
    this.#socket = socket;
    this.#send = options.send;
    this.#gate = options.gate;
    this.#credit = options.credit;
    this.#window = options.window;
    this.#allowance = options.window;
    this.#onDone = options.onDone;
    // Only a plain local socket can be read and written by descriptor.
    this.#onLong = descriptorOf(socket) >= 0 ? options.onLong : undefined;
    this.#switchesFirst = options.switchesFirst ?? false;
  }

  /** Bytes received from the peer and written to the local socket, for logs. */
  get bytesIn(): number {
    return this.#framedIn + (this.#opening?.moved() ?? 0);
  }

  /** Bytes read from the local socket and sent to the peer, for logs. */
  get bytesOut(): number {
    return this.#framedOut + (this.#sealing?.moved() ?? 0);
  }

  /** Whether the stream moves (or moved) bytes on a sealed channel. */
  get sealed(): boolean {
    return this.#channel !== undefined;
  }

  /**
   * The stream's sealed channel is joined: the client switches its sending direction to it now,
   * the server once the client's `tunnel-switch` says the client reads the channel no more as TLS.
   */
  useChannel(channel: SealedChannel): void {
    if (this.#done || this.#channel !== undefined) {
      channel.destroy();
      return;
    }
    this.#channel = channel;
    if (this.#switchesFirst) this.#switchOut();
    else if (this.#peerSwitched) this.#followPeer();
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
    if ((header.type === TUNNEL_FRAMES.data || header.type === TUNNEL_FRAMES.end) && this.#peerSwitched) {
      this.#finish(new SockitError('BAD_REQUEST', `${header.type} after tunnel-switch`));
      return;
    }
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
      this.#framedIn += length;
      this.#writeParts(parts, length, frame);
      this.#checkLong();
    } else if (header.type === TUNNEL_FRAMES.switch) {
      // The client switches once it has read `attached`, which the server may not have seen
      // reach the kernel yet: its channel can come just after the switch. The server's cannot.
      if (this.#peerSwitched || (this.#channel === undefined && this.#switchesFirst)) {
        this.#finish(new SockitError('BAD_REQUEST', 'tunnel-switch without a joined channel'));
        return;
      }
      this.#peerSwitched = true;
      if (this.#channel !== undefined) this.#followPeer();
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
    // Switched: a chunk still handed out here (stopReading's drain emits 'data' for what it
    // takes) is already in the sealer's prefix.
    if (this.#done || this.#switchedOut) return;
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
    this.#framedOut += bytes.length;
    this.#send({ type: TUNNEL_FRAMES.data }, bytes);
    this.#gate.charge(this.#account, bytes.length);
    this.#checkLong();
  }

  #checkLong(): void {
    if (this.#onLong === undefined || this.#framedIn + this.#framedOut < TUNNEL_CHANNEL_AFTER_BYTES) return;
    const onLong = this.#onLong;
    this.#onLong = undefined;
    // Not while a read is on its way through #read: the ask follows the frame that crossed the line.
    queueMicrotask(() => {
      if (!this.#done) onLong();
    });
  }

  /**
   * Our sending direction goes on the channel: Node reads the local socket no more, what it had
   * read (and what waited for credit) is the first the channel seals, and `tunnel-switch` is
   * our last frame. A direction that already ended sends only the switch.
   */
  #switchOut(): void {
    const channel = this.#channel!;
    this.#switchedOut = true;
    this.#gate.leave(this.#turn, this.#account);
    this.#inLine = false;
    if (this.#sentEnd) {
      this.#send({ type: TUNNEL_FRAMES.switch });
      return;
    }
    const held = this.#held;
    this.#held = undefined;
    const buffered = stopReading(this.#socket);
    const prefix = held === undefined ? buffered : Buffer.concat([held, buffered]);
    this.#send({ type: TUNNEL_FRAMES.switch });
    this.#sealing = this.#runSealed(
      (onDone) => sealDescriptor(descriptorOf(this.#socket), channel.fd, channel.keys.send, onDone, prefix),
      () => {
        this.#sentEnd = true;
        this.#maybeDone();
      },
    );
  }

  /** Starts a sealed direction: a failure of it, or to start it, ends the stream (CLOSED). */
  #runSealed(
    start: (onDone: SealedDirectionDone) => RelayedDirection,
    onEnd: () => void,
  ): RelayedDirection | undefined {
    try {
      return start((error) => {
        if (error === undefined) onEnd();
        else this.#finish(new SockitError('CLOSED', `the sealed channel failed: ${error.code}`));
      });
    } catch (error) {
      this.#finish(new SockitError('CLOSED', `cannot start the sealed channel: ${(error as Error).message}`));
      return undefined;
    }
  }

  /**
   * The offered channel will never be joined (withdrawn, expired): a peer that switched to it
   * anyway would never send its bytes, so the stream ends (BAD_REQUEST); otherwise nothing changes.
   */
  abandonChannel(): void {
    if (this.#peerSwitched && this.#channel === undefined) {
      this.#finish(new SockitError('BAD_REQUEST', 'tunnel-switch, but the sealed channel was never joined'));
    }
  }

  /** The peer switched and the channel is here: our direction follows, and its bytes are opened. */
  #followPeer(): void {
    if (!this.#switchedOut) this.#switchOut();
    this.#startOpening();
  }

  /**
   * The peer's bytes come on the channel: once what it sent in frames is written to the local
   * socket, its records are opened into the socket in C; its end record ends the socket.
   */
  #startOpening(): void {
    if (this.#peerEnded) return; // it ended in frames: nothing follows
    // An empty write completes after every write before it: the frames' bytes go first.
    this.#socket.write(Buffer.alloc(0), () => {
      if (this.#done) return;
      const channel = this.#channel!;
      this.#opening = this.#runSealed(
        (onDone) => openDescriptor(channel.fd, descriptorOf(this.#socket), channel.keys.receive, onDone),
        () => {
          this.#peerEnded = true;
          this.#socket.end(() => {
            this.#wroteEnd = true;
            this.#maybeDone();
          });
        },
      );
    });
  }

  #unhold(): void {
    const held = this.#held;
    // In the gate's line: a grant of credit waits for our turn too. Switched: the channel has them.
    if (held === undefined || this.#inLine || this.#switchedOut) return;
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
      if (!this.#peerEnded && !this.#peerSwitched) this.#send({ type: TUNNEL_FRAMES.window, bytes });
    }
  }

  #flushEnd(): void {
    // Switched: the channel's end record carries our end.
    if (!this.#localEnded || this.#sentEnd || this.#held !== undefined || this.#done || this.#switchedOut)
      return;
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
    this.#sealing?.stop();
    this.#opening?.stop();
    this.#channel?.destroy();
    this.#socket.destroy();
    this.#onDone(error);
  }
}
