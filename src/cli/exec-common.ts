/** What `sockit exec` and `sockit shell` share: exit statuses and how an outcome is reported. */
import { fstatSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import type { ExecExit } from '../client/exec.js';
import { type ErrorCode, SockitError } from '../errors.js';

/** Exit codes of `sockit exec`, chosen to read like `ssh host cmd` and a shell. */
export const EXEC_EXIT = {
  /** The command's own code 0–255 passes through; these are ours. */
  usage: 2,
  /** Killed by the server at its timeout, as coreutils `timeout` reports it. */
  timedOut: 124,
  /** The server refused the program (allow-list, permissions), as a shell says "cannot execute". */
  forbidden: 126,
  /** No such program on the server, as a shell says "command not found". */
  notFound: 127,
  /** Added to a signal's number when the command died of it (SIGKILL → 137). */
  signalBase: 128,
  /** Could not connect, authenticate, or keep the connection: ssh's own failure code. */
  connection: 255,
} as const;

/**
 * Whether local stdin is /dev/null (cron, `< /dev/null`, a spawner's 'ignore'): the command then
 * reads the server's /dev/null instead, the same end-of-file at once without a stream opened on
 * it here (Node's stdin for a file loads its file streams, several ms of a short run's start).
 */
export function stdinIsDevNull(): boolean {
  try {
    const stdin = fstatSync(0);
    return stdin.isCharacterDevice() && stdin.rdev === statSync('/dev/null').rdev;
  } catch {
    return false; // a closed stdin: the stream reports it as it always has
  }
}

/** One server's run, for the fan-out summary. */
export interface TargetResult {
  address: string;
  exitCode: number;
  /** e.g. `exit 0`, `killed by SIGTERM`, `NOT_FOUND: program …`. */
  outcome: string;
  /** How long it ran (the server's measure), or for a failure how long until it failed. */
  durationMs: number;
}

/** The exit status and summary of a command that ran (and prints why it was killed, if it was). */
export function describeExit(address: string, exit: ExecExit, prefix: string | undefined): TargetResult {
  const base = { address, durationMs: exit.durationMs };
  if (exit.timedOut) {
    printError(new SockitError('TIMEOUT', `the command ran past its timeout and was killed`), prefix);
    return { ...base, exitCode: EXEC_EXIT.timedOut, outcome: 'timed out (killed)' };
  }
  if (exit.truncated) {
    printError(
      new SockitError('TOO_LARGE', `the command's output passed the server's limit; it was killed`),
      prefix,
    );
  }
  if (exit.signal !== null) {
    const number = constants.signals[exit.signal] ?? 0;
    return {
      ...base,
      exitCode: EXEC_EXIT.signalBase + number,
      outcome: `killed by ${exit.signal}${exit.truncated ? ' (output limit)' : ''}`,
    };
  }
  return { ...base, exitCode: exit.code ?? EXEC_EXIT.connection, outcome: `exit ${exit.code}` };
}

/** ssh-like: our own failures are 255, except the shell's 126/127 for a refused or missing program. */
export function exitForError(code: ErrorCode): number {
  switch (code) {
    case 'USAGE':
    case 'INVALID_OPTION':
      return EXEC_EXIT.usage;
    case 'CANCELLED':
      return EXEC_EXIT.signalBase + constants.signals.SIGINT;
    case 'NOT_FOUND':
      return EXEC_EXIT.notFound;
    case 'FORBIDDEN':
      return EXEC_EXIT.forbidden;
    default:
      return EXEC_EXIT.connection;
  }
}

/** `CODE: message` for a SockitError, else the message. */
export function describeError(error: unknown): string {
  if (error instanceof SockitError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/** One line on stderr (with the server prefix in a fan-out); the stack only with SOCKIT_DEBUG. */
export function printError(error: unknown, prefix = ''): void {
  process.stderr.write(`${prefix}sockit: ${describeError(error)}\n`);
  if (process.env.SOCKIT_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
}
