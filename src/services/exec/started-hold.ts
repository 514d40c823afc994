/**
 * How long a command's `started` frame may wait to leave together with what follows it: its
 * first output, or its exit. Most commands a client runs in a loop end well within it; their
 * `started`, output and `exit` then leave in one write, which the client reads in one wake-up,
 * where an early `started` costs a write, a read and a wake-up of its own on each side. A
 * command still running with no output when it passes gets its `started` at that moment.
 */
export const STARTED_HOLD_MS = 10;

/**
 * The held frames' senders and when each is due, oldest first (a Map keeps insertion order, and
 * every hold is equally long, so that is also the order in which they fall due). One timer, for
 * the oldest: a timer per command would cost more than the write it saves.
 */
const held = new Map<() => void, number>();
let timer: NodeJS.Timeout | undefined;

/**
 * Holds a `started` frame: `send` is called once, STARTED_HOLD_MS from now, unless
 * `letGo(send)` sends it sooner.
 */
export function holdStarted(send: () => void): void {
  held.set(send, performance.now() + STARTED_HOLD_MS);
  if (timer === undefined) armFor(STARTED_HOLD_MS);
}

/** Sends a held frame now (before the output or exit it precedes); nothing if it already left. */
export function letGo(send: () => void): void {
  if (held.delete(send)) send();
}

function armFor(ms: number): void {
  timer = setTimeout(sendDue, ms);
  // Nothing to wait for on its own: a held frame belongs to a running command, which holds the loop.
  timer.unref();
}

/** Sends the frames whose time is up (not those held a moment ago) and waits for the next. */
function sendDue(): void {
  timer = undefined;
  const now = performance.now();
  for (const [send, due] of held) {
    if (due > now) {
      armFor(Math.max(1, Math.ceil(due - now)));
      return;
    }
    held.delete(send);
    send();
  }
}
