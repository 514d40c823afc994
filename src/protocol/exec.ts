/** What both ends of the exec service agree on (PROTOCOL section 4, "exec"). */

/** Signals a client may forward to a running command with a `signal` frame. */
export const EXEC_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL'] as const;

export type ExecSignal = (typeof EXEC_SIGNALS)[number];

/** Whether `name` is a signal the exec service forwards. */
export function isExecSignal(name: unknown): name is ExecSignal {
  return (EXEC_SIGNALS as readonly unknown[]).includes(name);
}
