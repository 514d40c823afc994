/**
 * Reconnect pacing for clients that outlive their connection (`chat --reconnect`,
 * `connect --reconnect`): exponential backoff with full jitter. Attempt n (from 0) waits a
 * random time in [floor, min(cap, initial × 2^n)], so a fleet of clients whose server restarted
 * spreads out instead of arriving together, and the floor keeps even an unlucky draw from
 * turning into a tight loop.
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
  /** A number in [0, 1); injected by tests. Default Math.random. */
  random?: () => number;
}

/** The defaults: first wait up to 250 ms, doubling to at most 30 s, never under 50 ms. */
export const RECONNECT_DEFAULTS = Object.freeze({ initialMs: 250, capMs: 30_000, floorMs: 50 });

/** The wait before each attempt; `reset()` after a connection that worked. */
export class Backoff {
  readonly #initialMs: number;
  readonly #capMs: number;
  readonly #floorMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? RECONNECT_DEFAULTS.initialMs;
    this.#capMs = options.capMs ?? RECONNECT_DEFAULTS.capMs;
    this.#floorMs = options.floorMs ?? RECONNECT_DEFAULTS.floorMs;
    this.#random = options.random ?? Math.random;
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
    const ceiling = this.ceilingMs;
    this.#attempt++;
    return Math.round(this.#floorMs + this.#random() * (ceiling - this.#floorMs));
  }

  /** Starts again from the initial wait: the last attempt succeeded. */
  reset(): void {
    this.#attempt = 0;
  }
}

/** Errors worth another attempt: the server is not there (yet), or the connection broke. */
export function isRetryable(error: unknown): boolean {
  const code = (error as Partial<SockitError> | undefined)?.code;
  return code === 'CONNECT_FAILED' || code === 'CLOSED' || code === 'TIMEOUT' || code === 'UNAVAILABLE';
}

/** What `retry` does between attempts. */
export interface RetryOptions extends BackoffOptions {
  /** Give up after this many failed attempts in a row (the last error is thrown). Default: never. */
  maxAttempts?: number | undefined;
  /** Which errors are retried; others are thrown at once. Default isRetryable. */
  retryable?: (error: unknown) => boolean;
  /** Called before each wait: say so on stderr. */
  onRetry?: (info: { error: unknown; delayMs: number; attempt: number }) => void;
  /** Stops waiting (Ctrl-C): the wait rejects with the signal's reason. */
  signal?: AbortSignal;
  /** A Backoff to continue (its count carries over); default a new one from these options. */
  backoff?: Backoff;
  /** How to wait; injected by tests (a fake clock). Default a timer. */
  wait?: (delayMs: number, signal: AbortSignal | undefined) => Promise<void>;
}

const timerWait = (delayMs: number, signal: AbortSignal | undefined): Promise<void> =>
  sleep(delayMs, undefined, signal ? { signal } : {});

/**
 * Runs `attempt` until it resolves, waiting the backoff between failures. Resets the backoff on
 * success, so the next outage starts again from the initial wait.
 */
export async function retry<T>(attempt: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const backoff = options.backoff ?? new Backoff(options);
  const retryable = options.retryable ?? isRetryable;
  for (let failures = 1; ; failures++) {
    try {
      const result = await attempt();
      backoff.reset();
      return result;
    } catch (error) {
      if (!retryable(error)) throw error;
      if (options.maxAttempts !== undefined && failures >= options.maxAttempts) throw error;
      const delayMs = backoff.next();
      options.onRetry?.({ error, delayMs, attempt: failures });
      await (options.wait ?? timerWait)(delayMs, options.signal);
    }
  }
}
