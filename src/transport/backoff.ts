/**
 * Reconnect pacing for clients that outlive their connection (`chat --reconnect`,
 * `connect --reconnect`): exponential backoff with full jitter. Attempt n (from 0) waits a
 * random time in [floor, min(cap, initial × 2^n)], so a fleet of clients whose server restarted
 * spreads out instead of arriving together, and the floor keeps even an unlucky draw from
 * turning into a tight loop. The schedule starts again from the initial wait only after a
 * connection stayed up for `stableMs`: a server that accepts and at once hangs up is retried
 * ever more slowly, not in a loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { invalidOption, type SockitError } from '../errors.js';

/** How reconnect attempts are spaced; every field has a default (RECONNECT_DEFAULTS). */
export interface BackoffOptions {
  /** The ceiling of the first wait, ms. Default 250. */
  initialMs?: number;
  /** No wait is longer than this, ms. Default 30 000. */
  capMs?: number;
  /** No wait is shorter than this, ms, so no draw makes a tight loop. Default 50. */
  floorMs?: number;
  /** A connection up this long, ms, counts as working: the next outage starts from the initial wait. Default 10 000. */
  stableMs?: number;
  /** A number in [0, 1); injected by tests. Default Math.random. */
  random?: () => number;
  /** A clock in ms; injected by tests. Default performance.now. */
  now?: () => number;
}

/** The defaults: first wait up to 250 ms, doubling to at most 30 s, never under 50 ms; 10 s up resets. */
export const RECONNECT_DEFAULTS = Object.freeze({
  initialMs: 250,
  capMs: 30_000,
  floorMs: 50,
  stableMs: 10_000,
});

/** The wait before each attempt; `reset()` after a connection that worked. */
export class Backoff {
  readonly #initialMs: number;
  readonly #capMs: number;
  readonly #floorMs: number;
  readonly #stableMs: number;
  readonly #random: () => number;
  readonly #now: () => number;
  #attempt = 0;
  #upSince: number | undefined;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? RECONNECT_DEFAULTS.initialMs;
    this.#capMs = options.capMs ?? RECONNECT_DEFAULTS.capMs;
    this.#floorMs = options.floorMs ?? RECONNECT_DEFAULTS.floorMs;
    this.#stableMs = options.stableMs ?? RECONNECT_DEFAULTS.stableMs;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => performance.now());
    if (!(this.#floorMs >= 0 && this.#initialMs >= this.#floorMs && this.#capMs >= this.#initialMs)) {
      throw invalidOption(
        `backoff needs 0 <= floorMs <= initialMs <= capMs, got ${this.#floorMs}, ${this.#initialMs}, ${this.#capMs}`,
      );
    }
  }

  /** Attempts made since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The ceiling of the next wait: initial × 2^attempt, capped. */
  get ceilingMs(): number {
    // 2^attempt overflows to Infinity long after the cap is reached; min() handles that.
    return Math.min(this.#capMs, this.#initialMs * 2 ** this.#attempt);
  }

  /** The wait before the next attempt, ms (whole), and counts the attempt. */
  next(): number {
    if (this.#upSince !== undefined && this.#now() - this.#upSince >= this.#stableMs) this.#attempt = 0;
    this.#upSince = undefined;
    const ceiling = this.ceilingMs;
    this.#attempt++;
    return Math.round(this.#floorMs + this.#random() * (ceiling - this.#floorMs));
  }

  /** The attempt worked: if the connection then stays up for stableMs, the schedule starts again. */
  succeeded(): void {
    this.#upSince = this.#now();
  }
}

/** Errors worth another attempt: the server is not there (yet), or the connection broke. */
export function isRetryable(error: unknown): boolean {
  const code = (error as Partial<SockitError> | undefined)?.code;
  return code === 'CONNECT_FAILED' || code === 'CLOSED' || code === 'TIMEOUT' || code === 'UNAVAILABLE';
}

/** What `retry` does between attempts. */
export interface RetryOptions {
  /** The schedule, shared across outages so that a flapping server is retried ever more slowly. */
  backoff: Backoff;
  /** Wait before the first attempt too: a connection just dropped. Default false. */
  waitFirst?: boolean;
  /** Give up after this many failed attempts in a row (the last error is thrown). Default: never. */
  maxAttempts?: number | undefined;
  /** Which errors are retried; others are thrown at once. Default isRetryable. */
  retryable?: (error: unknown) => boolean;
  /** Called before each wait, to say so on stderr; `error` is the failed attempt's (none before the first). */
  onRetry?: (info: RetryInfo) => void;
  /** Stops waiting (Ctrl-C): the wait rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** How to wait; injected by tests (a fake clock). Default a timer. */
  wait?: (delayMs: number, signal: AbortSignal | undefined) => Promise<void>;
}

/** What `onRetry` is told: the wait ahead, the attempt it precedes (from 1), what failed. */
export interface RetryInfo {
  delayMs: number;
  attempt: number;
  error?: unknown;
}

const timerWait = (delayMs: number, signal: AbortSignal | undefined): Promise<void> =>
  sleep(delayMs, undefined, signal ? { signal } : {});

/**
 * Runs `attempt` until it resolves, waiting the backoff between failures (and before the first
 * with `waitFirst`), and marks the backoff succeeded.
 */
export async function retry<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const { backoff } = options;
  const retryable = options.retryable ?? isRetryable;
  const wait = async (info: Omit<RetryInfo, 'delayMs'>): Promise<void> => {
    const delayMs = backoff.next();
    options.onRetry?.({ ...info, delayMs });
    await (options.wait ?? timerWait)(delayMs, options.signal);
  };
  if (options.waitFirst) await wait({ attempt: 1 });
  for (let failures = 1; ; failures++) {
    try {
      const result = await attempt();
      backoff.succeeded();
      return result;
    } catch (error) {
      if (!retryable(error)) throw error;
      if (options.maxAttempts !== undefined && failures >= options.maxAttempts) throw error;
      await wait({ attempt: failures + 1, error });
    }
  }
}
