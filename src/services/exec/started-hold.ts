/**
 * How long a command's `started` frame may wait to leave together with what follows it: its
 * first output, or its exit. Most commands a client runs in a loop end well within it; their
 * `started`, output and `exit` then leave in one write, which the client reads in one wake-up,
 * where an early `started` costs a write, a read and a wake-up of its own on each side. A
 * command still running with no output when it passes gets its `started` at that moment.
 */
export const STARTED_HOLD_MS = 10;

/** The held frames' senders; one shared timer lets them all go (a timer per command costs more). */
const held = new Set<() => void>();
let timer: NodeJS.Timeout | undefined;

/**
 * Holds a `started` frame: `send` is called once, at the latest STARTED_HOLD_MS from now,
 * unless `letGo(send)` sends it sooner.
 */
export function holdStarted(send: () => void): void {
  held.add(send);
  if (timer === undefined) {
    timer = setTimeout(sendHeld, STARTED_HOLD_MS);
    // Nothing to wait for on its own: a held frame belongs to a running command, which holds the loop.
    timer.unref();
  }
}

/** Sends a held frame now (before the output or exit it precedes); nothing if it already left. */
export function letGo(send: () => void): void {
  if (held.delete(send)) send();
}

function sendHeld(): void {
  timer = undefined;
  const due = [...held];
  held.clear();
  for (const send of due) send();
}
