/**
 * Commands' timeouts on one timer. Each is still a fixed deadline, met to the timer's precision;
 * what is shared is the Node timer: a command's own `setTimeout` and `clearTimeout` cost more
 * than the rest of starting and ending a short command in JavaScript (with one command at a
 * time, each made and removed Node's whole timer list for its duration). Here a command adds an
 * entry to a set, and removes it; the timer is set again only for a deadline sooner than the
 * one it waits for, and when it fires.
 */

/** One command's deadline; `remove` it when the command ends first. */
export interface Deadline {
  readonly due: number;
  readonly onDue: () => void;
}

const pending = new Set<Deadline>();
/** Node's longest timer (about 24.8 days); a later deadline is waited for in steps of it. */
const TIMER_MAX_MS = 2 ** 31 - 1;
let timer: NodeJS.Timeout | undefined;
/** When the timer fires (performance.now() time); Infinity while there is none. */
let armedFor = Number.POSITIVE_INFINITY;

/** Calls `onDue` `ms` from now, unless the returned deadline is removed first. */
export function addDeadline(ms: number, onDue: () => void): Deadline {
  const deadline: Deadline = { due: performance.now() + ms, onDue };
  pending.add(deadline);
  if (deadline.due < armedFor) arm(deadline.due);
  return deadline;
}

/** The command ended first: its deadline will not fire. The timer is left as it is (it is unref'd). */
export function removeDeadline(deadline: Deadline | undefined): void {
  if (deadline !== undefined) pending.delete(deadline);
}

function arm(due: number): void {
  clearTimeout(timer);
  armedFor = due;
  timer = setTimeout(fireDue, Math.min(TIMER_MAX_MS, Math.max(0, due - performance.now())));
  // A running command holds the loop by its process; a deadline left over from one that ended must not.
  timer.unref();
}

/** Fires the deadlines that are due and sets the timer for the soonest of the rest. */
function fireDue(): void {
  timer = undefined;
  armedFor = Number.POSITIVE_INFINITY;
  const now = performance.now();
  let next = Number.POSITIVE_INFINITY;
  for (const deadline of [...pending]) {
    if (deadline.due <= now) {
      pending.delete(deadline);
      deadline.onDue();
    } else if (deadline.due < next) next = deadline.due;
  }
  if (next < armedFor) arm(next);
}
