import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';

/**
 * Where the local side of a session reads from. A regular file (or a device such as /dev/zero)
 * is read by file descriptor in large chunks, the relay's fast path; pipes, sockets and
 * terminals go through Node's stream for that kind.
 */
export type Input =
  | { kind: 'fd'; fd: number }
  | { kind: 'stream'; stream: NodeJS.ReadableStream; tty: boolean };

/** Picks the best way to read standard input. */
export function standardInput(): Input {
  try {
    const stat = fstatSync(0);
    if (stat.isFile() || (stat.isCharacterDevice() && !isatty(0))) return { kind: 'fd', fd: 0 };
  } catch {
    // closed stdin: fall through to the stream, which reports EOF
  }
  return { kind: 'stream', stream: process.stdin, tty: isatty(0) };
}

/** True when standard input is a terminal: somebody types, so a peer's EOF ends the session. */
export function isInteractive(input: Input | undefined): boolean {
  return input?.kind === 'stream' && input.tty;
}

/**
 * 1 when standard output may be written synchronously by descriptor (a file, pipe, socket or
 * device), enabling the relay's reused-buffer path; undefined for a terminal, which keeps
 * Node's own stream.
 */
export function standardOutputFd(): number | undefined {
  try {
    fstatSync(1);
  } catch {
    return undefined;
  }
  return isatty(1) ? undefined : 1;
}
