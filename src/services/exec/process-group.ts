/**
 * Commands run as leaders of their own process group (spawned `detached`), so one signal to the
 * negative pid reaches the command and everything it started — grandchildren included.
 */

/** Sends `signal` to every process in the group `pid` leads. False when the group is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  // "Nobody left" is the common answer after a command exits, and Node reports it by throwing:
  // without a stack trace the exception costs next to nothing on the per-command path.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    process.kill(-pid, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ESRCH: nobody left. EPERM: only members we may not signal (a setuid program) remain.
    if (code === 'ESRCH' || code === 'EPERM') return false;
    throw error;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

const liveGroups = new Set<number>();
let exitHookInstalled = false;

/**
 * Remembers a running group so that it dies with the server: detached children would otherwise
 * outlive a server that exits (process.exit on a second Ctrl-C, an uncaught error).
 */
export function trackGroup(pid: number): void {
  liveGroups.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const group of liveGroups) signalGroup(group, 'SIGKILL');
  });
}

/** Forgets a group whose leader has been reaped. */
export function untrackGroup(pid: number): void {
  liveGroups.delete(pid);
}
