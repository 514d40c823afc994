import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { RelaySink } from '../forward-relay.js';
import { type LiveToxic, MAX_TOXIC_MS, type ToxicSet } from './toxics.js';

/** Bytes a link holds before it asks its source to wait: memory stays bounded whatever the toxics. */
const HIGH_WATER_BYTES = 256 * 1024;

interface Piece {
  bytes?: Buffer;
  /** Not delivered before this time (latency). */
  notBefore: number;
  /**
   * Delivered at least this long after the piece before it, and, after a pause, this long from
   * now (bandwidth: the piece's own time on the wire).
   */
  gap: number;
  /**
   * Delivered at least this long after the piece before it, but at once after a pause (slicer's
   * delay: like toxiproxy's sleep after each slice, it spaces slices across chunks too).
   */
  spacing: number;
  /** Runs instead of a write when the piece's time comes (end, close). */
  action?: () => void;
}

/**
 * One direction of a chaos connection: a RelaySink between the relay and the destination socket
 * that delays, slices, throttles, holds or cuts the bytes as the current toxics say. Toxics are
 * read live from the set, so adding or removing one through the control API changes open
 * connections too; whether a toxic applies to this connection (its toxicity) is decided once.
 */
export class ToxicLink extends EventEmitter implements RelaySink {
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #direction: 'up' | 'down';
  readonly #toxics: ToxicSet;
  readonly #dice = new Map<number, boolean>();
  readonly #queue: { at: number; piece: Piece }[] = [];
  #queuedBytes = 0;
  #tail = 0;
  #timer: NodeJS.Timeout | undefined;
  #passed = 0;
  #held: Buffer[] = [];
  #endHeld = false;
  #needDrain = false;
  #blocked = false;
  #closed = false;
  readonly #timers = new Map<number, NodeJS.Timeout>();
  readonly #onChange = (): void => this.#review();

  constructor(from: Socket, to: Socket, direction: 'up' | 'down', toxics: ToxicSet) {
    super();
    this.#from = from;
    this.#to = to;
    this.#direction = direction;
    this.#toxics = toxics;
    toxics.on('change', this.#onChange);
    // Only the destination's close ends the link: bytes read before the source closed still go out.
    to.once('close', () => this.#shutdown());
    to.on('drain', () => {
      this.#blocked = false;
      this.#pump();
    });
    this.#review();
  }

  /** The toxics of this direction that apply to this connection. */
  #active(): LiveToxic[] {
    return this.#toxics.for(this.#direction).filter((toxic) => {
      let applies = this.#dice.get(toxic.id);
      if (applies === undefined) {
        applies = Math.random() < toxic.toxicity;
        this.#dice.set(toxic.id, applies);
      }
      return applies;
    });
  }

  /** Starts the timers of timeout and reset-peer toxics, and lets held bytes go when no timeout is left. */
  #review(): void {
    if (this.#closed) return;
    const active = this.#active();
    for (const toxic of active) {
      if (this.#timers.has(toxic.id)) continue;
      if (toxic.type === 'reset-peer') {
        this.#timers.set(
          toxic.id,
          setTimeout(() => this.#reset(), toxic.attributes.timeout!),
        );
      } else if (toxic.type === 'timeout' && toxic.attributes.timeout! > 0) {
        this.#timers.set(
          toxic.id,
          setTimeout(() => this.#cut(), toxic.attributes.timeout!),
        );
      }
    }
    for (const [id, timer] of this.#timers) {
      if (!active.some((toxic) => toxic.id === id)) {
        clearTimeout(timer);
        this.#timers.delete(id);
      }
    }
    if (!active.some((toxic) => toxic.type === 'timeout') && (this.#held.length > 0 || this.#endHeld)) {
      const held = this.#held;
      this.#held = [];
      for (const chunk of held) this.write(chunk);
      if (this.#endHeld) {
        this.#endHeld = false;
        this.end();
      }
      if (this.#queuedBytes < HIGH_WATER_BYTES) this.#drained();
    }
  }

  write(chunk: Buffer): boolean {
    if (this.#closed) return true;
    const active = this.#active();
    if (active.some((toxic) => toxic.type === 'timeout')) {
      // Stop forwarding: keep this chunk and read no more until the toxic goes (or cuts the connection).
      this.#held.push(chunk);
      this.#needDrain = true;
      return false;
    }
    const now = performance.now();
    let pieces: Piece[] = [{ bytes: chunk, notBefore: now, gap: 0, spacing: 0 }];
    let close = false;
    for (const toxic of active) {
      const a = toxic.attributes;
      switch (toxic.type) {
        case 'latency': {
          const jitter = a.jitter! > 0 ? (Math.random() * 2 - 1) * a.jitter! : 0;
          const at = now + Math.max(0, a.latency! + jitter);
          for (const piece of pieces) piece.notBefore = Math.max(piece.notBefore, at);
          break;
        }
        case 'bandwidth': {
          // Pieces of a tenth of a second each, so a slow rate trickles instead of bursting.
          const rate = a.rate!;
          pieces = split(pieces, () => Math.max(1, Math.floor(rate / 10)), 0);
          for (const piece of pieces) piece.gap += (piece.bytes!.length / rate) * 1000;
          break;
        }
        case 'slicer': {
          const size = a.size!;
          const variation = Math.min(a.variation!, size - 1);
          pieces = split(
            pieces,
            () => Math.max(1, size + Math.round((Math.random() * 2 - 1) * variation)),
            a.delay!,
          );
          break;
        }
        case 'limit-data': {
          const left = Math.max(0, a.bytes! - this.#passed);
          pieces = truncate(pieces, left);
          if (chunk.length >= left) close = true;
          break;
        }
        default:
          break;
      }
    }
    for (const piece of pieces) {
      this.#passed += piece.bytes!.length;
      this.#enqueue(piece);
    }
    if (close) {
      // Exactly N bytes went through: the destination gets them and EOF, the source is cut.
      this.#enqueue({ notBefore: now, gap: 0, spacing: 0, action: () => this.#finishAfterLimit() });
    }
    if (this.#queuedBytes >= HIGH_WATER_BYTES) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  end(): void {
    if (this.#closed) return;
    if (this.#held.length > 0) {
      this.#endHeld = true;
      return;
    }
    const slowClose = this.#active().find((toxic) => toxic.type === 'slow-close');
    this.#enqueue({
      notBefore: performance.now(),
      gap: slowClose?.attributes.delay ?? 0,
      spacing: 0,
      action: () => {
        if (!this.#to.destroyed) this.#to.end();
      },
    });
  }

  #enqueue(piece: Piece): void {
    const at = Math.max(
      piece.notBefore,
      // Two toxics spacing the same piece overlap (toxiproxy's toxics run as a pipeline), not add up.
      this.#tail + Math.max(piece.gap, piece.spacing),
      piece.gap > 0 ? performance.now() + piece.gap : 0,
    );
    this.#tail = at;
    this.#queue.push({ at, piece });
    this.#queuedBytes += piece.bytes?.length ?? 0;
    this.#pump();
  }

  #pump(): void {
    if (this.#closed || this.#blocked) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = performance.now();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now + 1) {
      const { piece } = this.#queue.shift()!;
      if (piece.action) {
        piece.action();
        if (this.#closed) return;
        continue;
      }
      this.#queuedBytes -= piece.bytes!.length;
      if (!this.#to.write(piece.bytes!)) {
        this.#blocked = true;
        break;
      }
    }
    if (!this.#blocked && this.#queue.length > 0) {
      // Capped: Node fires a longer timer at once; pumping early just waits again.
      const wait = Math.min(MAX_TOXIC_MS, Math.max(0, this.#queue[0]!.at - now));
      this.#timer = setTimeout(() => this.#pump(), wait);
    }
    if (!this.#blocked && this.#queuedBytes < HIGH_WATER_BYTES / 2 && this.#held.length === 0)
      this.#drained();
  }

  #drained(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this.emit('drain');
  }

  #finishAfterLimit(): void {
    if (!this.#to.destroyed) this.#to.end();
    this.#from.destroy();
    this.#shutdown();
  }

  /** The timeout toxic's end: the connection is closed, with nothing more delivered. */
  #cut(): void {
    this.#from.destroy();
    this.#to.destroy();
    this.#shutdown();
  }

  /** reset-peer: both sides see a TCP RST (a plain close where the socket cannot reset, as TLS). */
  #reset(): void {
    for (const socket of [this.#from, this.#to]) {
      if (socket.destroyed) continue;
      try {
        socket.resetAndDestroy();
      } catch {
        socket.destroy();
      }
    }
    this.#shutdown();
  }

  #shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#held = [];
    this.#toxics.off('change', this.#onChange);
  }
}

/**
 * Splits every piece into sizes from `size()`, each spaced at least `spacing` from the one before;
 * the first keeps the piece's own gap and spacing.
 */
function split(pieces: Piece[], size: () => number, spacing: number): Piece[] {
  const result: Piece[] = [];
  for (const piece of pieces) {
    const bytes = piece.bytes!;
    let offset = 0;
    let first = true;
    while (offset < bytes.length) {
      const length = Math.min(size(), bytes.length - offset);
      result.push({
        bytes: bytes.subarray(offset, offset + length),
        notBefore: piece.notBefore,
        gap: first ? piece.gap : 0,
        spacing: first ? Math.max(piece.spacing, spacing) : spacing,
      });
      offset += length;
      first = false;
    }
  }
  return result;
}

function truncate(pieces: Piece[], left: number): Piece[] {
  const result: Piece[] = [];
  for (const piece of pieces) {
    if (left <= 0) break;
    const bytes = piece.bytes!.length <= left ? piece.bytes! : piece.bytes!.subarray(0, left);
    left -= bytes.length;
    result.push({ ...piece, bytes });
  }
  return result;
}
