/**
 * Bytes queued on a connection (every stream's, not yet handed to the kernel) past which its
 * tunnel streams take turns: enough to keep TLS encrypting while the next reads come in, small
 * next to the streams' windows.
 */
export const TUNNEL_CONNECTION_BACKLOG = 1024 * 1024;

/** The least one stream may send in a round while the connection is congested: one full read. */
export const TUNNEL_ROUND_QUANTUM = 64 * 1024;

/**
 * What each of `streams` streams may send in a round: the backlog shared among them, never less
 * than one full read. Why shared rather than fixed: a round lasts until the connection drains,
 * so a fixed 64 KiB let one busy stream send one read per drain, pausing and resuming its socket
 * every 64 KiB (three quarters of its reads, and a third more CPU per byte, in a 256 MiB run).
 */
export function roundQuantum(streams: number): number {
  return Math.max(TUNNEL_ROUND_QUANTUM, Math.floor(TUNNEL_CONNECTION_BACKLOG / Math.max(1, streams)));
}

/** What a gate watches of its connection: a client's or a server connection's (both have these). */
export interface TunnelConnection {
  /** Bytes sent on it and not yet handed to the kernel. */
  readonly writableLength: number;
  /** Resolves once its queue has been written; rejects when it closed. */
  drained(): Promise<void>;
}

/** A stream's sending in the gate's rounds: kept by the stream, updated by the gate. */
export interface TunnelSendAccount {
  /** The round of the bytes below. */
  round: number;
  /** Bytes sent in that round. */
  bytes: number;
}

/**
 * Shares one connection among its tunnel streams, in turn. Credit bounds what each stream may
 * have in flight; this bounds what they queue together, the way ssh reads its channels only
 * while the connection's output buffer is small: a stream sends at once while the queue is under
 * TUNNEL_CONNECTION_BACKLOG, else it keeps the one read it holds, stops reading its socket and
 * waits in line. From then on the connection is congested and goes in rounds, deficit round
 * robin: each time it drains a round begins and the line is served in order, each waiting
 * stream sending what it held, until the queue is over the mark again; within a round a stream
 * sends at most its quantum (the rest of a read waits in line): the mark shared by the streams
 * that sent in the round before (roundQuantum), so every stream gets the same bytes per round
 * whatever sizes their reads return and in whatever order their sockets become readable (the
 * stream libuv happens to read first would otherwise take a round's whole budget), and a stream
 * alone sends up to the mark between drains. A drain that finds nobody waiting, and nobody in line
 * a loop turn later, ends the congestion. (20 streams whose 4 MiB windows all queued up held
 * 80 MiB here, and cost twice the CPU per byte to move.)
 */
export class TunnelSendGate {
  readonly #connection: TunnelConnection;
  /** The turns of the streams waiting in line, oldest first. */
  readonly #line: (() => void)[] = [];
  #awaitingDrain = false;
  #congested = false;
  #round = 0;
  /** What each stream may send in this round while congested. */
  #quantum = TUNNEL_ROUND_QUANTUM;
  /** Accounts that sent lately: the streams among which the next round's quantum is shared. */
  readonly #senders = new Set<TunnelSendAccount>();

  constructor(connection: TunnelConnection) {
    this.#connection = connection;
  }

  #backlog(): number {
    return this.#connection.writableLength;
  }

  /**
   * How many bytes a stream may send now: none while the queue is over the mark; while
   * congested, what is left of its quantum in this round; else no limit.
   */
  allowance(account: TunnelSendAccount): number {
    if (this.#backlog() >= TUNNEL_CONNECTION_BACKLOG) return 0;
    if (!this.#congested) return Number.POSITIVE_INFINITY;
    const used = account.round === this.#round ? account.bytes : 0;
    return Math.max(0, this.#quantum - used);
  }

  /** What each stream may send in the current round while congested. */
  get quantum(): number {
    return this.#quantum;
  }

  /** Counts `bytes` a stream sent against its quantum of the current round. */
  charge(account: TunnelSendAccount, bytes: number): void {
    if (account.round !== this.#round) this.join(account);
    account.bytes += bytes;
  }

  /**
   * A stream begins (or sends first in a round): it counts among this round's senders, so the
   * next rounds share with it too, even before it has sent a byte.
   */
  join(account: TunnelSendAccount): void {
    account.round = this.#round;
    account.bytes = 0;
    this.#senders.add(account);
  }

  /** Gets in line; `turn` runs when it comes (the stream sends what it holds and reads on). */
  wait(turn: () => void): void {
    this.#line.push(turn);
    if (!this.#congested) {
      // Quantums count from here: what streams sent before the congestion is not held against them.
      this.#congested = true;
      this.#beginRound();
    }
    this.#awaitDrain();
  }

  /** A stream that ended leaves: its turn out of the line, its account out of the senders. */
  leave(turn: () => void, account: TunnelSendAccount): void {
    this.#senders.delete(account);
    const at = this.#line.indexOf(turn);
    if (at >= 0) this.#line.splice(at, 1);
  }

  #awaitDrain(): void {
    if (this.#awaitingDrain) return;
    this.#awaitingDrain = true;
    this.#connection.drained().then(
      () => {
        if (this.#backlog() >= TUNNEL_CONNECTION_BACKLOG) {
          // Drained by the socket's own mark, which is higher than ours (a caller's
          // setDefaultHighWaterMark): look again after a loop turn rather than spin on it.
          setImmediate(() => {
            this.#awaitingDrain = false;
            this.#awaitDrain();
          });
          return;
        }
        this.#awaitingDrain = false;
        this.#serve();
      },
      () => {
        // The connection closed: its streams are aborted by their owners.
        this.#awaitingDrain = false;
        this.#line.length = 0;
      },
    );
  }

  /** A new round: turns in order while the queue is under the mark; the rest wait for the next. */
  #serve(): void {
    this.#beginRound();
    if (this.#line.length === 0) {
      this.#endCongestionIfIdle();
      return;
    }
    // Only those in line when the round began: one that got back in line during it (a read
    // larger than its quantum) waits for the next.
    for (let waiting = this.#line.length; waiting > 0; waiting--) {
      const turn = this.#line.shift();
      // Over the mark again, or a turn made others leave the line: the rest wait.
      if (turn === undefined) break;
      turn();
      if (this.#backlog() >= TUNNEL_CONNECTION_BACKLOG) break;
    }
    this.#awaitDrain();
  }

  /**
   * A new round, its quantum shared by the streams that sent (or began) in the last two or wait
   * now. Two: a round cut short by the mark serves only part of the line, and counting only
   * those would raise the quantum and shorten the next round further. Began: streams that start
   * together must not find the first rounds' quantum sized for the one that read first.
   */
  #beginRound(): void {
    let recent = 0;
    for (const account of this.#senders) {
      if (account.round >= this.#round - 1) recent++;
      else this.#senders.delete(account);
    }
    this.#round++;
    this.#quantum = roundQuantum(Math.max(recent, this.#line.length));
  }

  /**
   * Nobody waits at a drain: the congestion is over if still nobody does once the streams served
   * last had a loop turn to read again (a write can complete, and the connection drain, before
   * their sockets were polled at all: the first of them to read would then take a whole round).
   */
  #endCongestionIfIdle(): void {
    setImmediate(() =>
      setImmediate(() => {
        if (this.#line.length === 0 && !this.#awaitingDrain) this.#congested = false;
      }),
    );
  }
}

const gates = new WeakMap<TunnelConnection, TunnelSendGate>();

/** The gate of a connection, made by its first stream: every stream of it shares this one. */
export function sendGateOf(connection: TunnelConnection): TunnelSendGate {
  let gate = gates.get(connection);
  if (gate === undefined) {
    gate = new TunnelSendGate(connection);
    gates.set(connection, gate);
  }
  return gate;
}
