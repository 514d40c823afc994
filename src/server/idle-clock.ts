/** What the idle clock watches: a count that moves with traffic, and what to do when it stops. */
export interface IdleWatched {
  /** Grows whenever bytes are read or written. */
  readonly activity: number;
  /** The connection has been quiet for the whole timeout. Called again after each further timeout. */
  onIdle(): void;
}

interface Watch {
  seen: number;
  quietTicks: number;
}

/** Ticks per timeout: a timeout fires between `timeoutMs` and `timeoutMs` plus one tick. */
const TICKS_PER_TIMEOUT = 8;
const MAX_TICK_MS = 1000;

/**
 * Idle timeouts for all of a server's connections from one coarse timer. A socket's own
 * `setTimeout` re-arms a timer on every read and every write, a native call each time; here a
 * connection only bumps a counter and one interval looks at them all, a few times per timeout.
 */
export class IdleClock {
  readonly #tickMs: number;
  readonly #quietTicksToFire: number;
  readonly #watched = new Map<IdleWatched, Watch>();
  #timer: NodeJS.Timeout | undefined;

  /** `timeoutMs` > 0. */
  constructor(timeoutMs: number) {
    this.#tickMs = Math.max(1, Math.min(MAX_TICK_MS, Math.floor(timeoutMs / TICKS_PER_TIMEOUT)));
    this.#quietTicksToFire = Math.ceil(timeoutMs / this.#tickMs);
  }

  /** Starts watching; the quiet time counts from now. */
  watch(target: IdleWatched): void {
    this.#watched.set(target, { seen: target.activity, quietTicks: 0 });
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#tickMs);
      // The clock never keeps a process alive: the sockets it watches do that.
      this.#timer.unref();
    }
  }

  unwatch(target: IdleWatched): void {
    this.#watched.delete(target);
    if (this.#watched.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const idle: IdleWatched[] = [];
    for (const [target, watch] of this.#watched) {
      if (target.activity !== watch.seen) {
        watch.seen = target.activity;
        watch.quietTicks = 0;
      } else if (++watch.quietTicks >= this.#quietTicksToFire) {
        watch.quietTicks = 0;
        idle.push(target);
      }
    }
    // Called after the sweep: onIdle may close a connection, which unwatches it.
    for (const target of idle) target.onIdle();
  }
}
