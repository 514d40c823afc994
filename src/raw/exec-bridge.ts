import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import { endWithin } from '../transport/close-grace.js';
import type { Taps } from './session-log.js';

/** What to run for each connection: an argv (no shell) or a shell command line. */
export type ExecSpec = { argv: readonly string[] } | { shell: string };

export interface ExecResult {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started (no such program). */
  error: SockitError | undefined;
}

/** Time a peer gets to close after the process ended and we sent our EOF. */
const PEER_CLOSE_GRACE_MS = 5000;
/** Time a process gets between SIGTERM and SIGKILL once its client is gone. */
const KILL_GRACE_MS = 2000;

/** A readable name for logs and warnings: `tr a-z A-Z` or `sh -c '…'`. */
export function describeExec(spec: ExecSpec): string {
  return 'argv' in spec ? spec.argv.join(' ') : `sh -c ${JSON.stringify(spec.shell)}`;
}

/**
 * Connects a socket to a fresh process: socket → stdin, stdout → socket, stderr to ours.
 * `argv` runs without a shell, so metacharacters are plain bytes; `shell` runs `/bin/sh -c`.
 *
 * The peer's EOF closes the process's stdin; the process's exit (after its stdout is drained)
 * sends our EOF, and the peer gets a moment to close. A peer that goes away kills the whole
 * process group, so nothing keeps running for a client that left.
 */
export function bridgeToProcess(socket: Socket, spec: ExecSpec, taps?: Taps): Promise<ExecResult> {
  socket.allowHalfOpen = true;
  const [file, ...args] = 'argv' in spec ? spec.argv : ['/bin/sh', '-c', spec.shell];
  if (file === undefined || file === '') {
    return Promise.resolve({
      code: null,
      signal: null,
      error: new SockitError('USAGE', '--exec needs a command'),
    });
  }
  let child: ChildProcess;
  try {
    // detached: its own process group, so a shell's children die with it.
    child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
  } catch (error) {
    socket.destroy();
    return Promise.resolve({
      code: null,
      signal: null,
      error: new SockitError('NOT_FOUND', `cannot run ${file}: ${(error as Error).message}`),
    });
  }
  const stdin = child.stdin!;
  const stdout = child.stdout!;
  let exited = false;
  const killGroup = (signal: NodeJS.Signals): void => {
    if (exited || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  };

  // socket → stdin, pausing the socket while the process reads slowly.
  stdin.on('error', () => {}); // EPIPE when the process exits without reading everything
  socket.on('data', (chunk: Buffer) => {
    taps?.received?.(chunk);
    if (stdin.destroyed || stdin.writableEnded) return; // the process is gone: drop what the peer still sends
    if (!stdin.write(chunk)) {
      socket.pause();
      stdin.once('drain', () => socket.resume());
    }
  });
  socket.on('end', () => {
    if (!stdin.destroyed) stdin.end();
  });
  socket.on('error', () => {});
  stdin.once('close', () => socket.resume());

  // stdout → socket, pausing the process's output while the peer reads slowly.
  stdout.on('data', (chunk: Buffer) => {
    taps?.sent?.(chunk);
    if (!socket.write(chunk)) {
      stdout.pause();
      socket.once('drain', () => stdout.resume());
    }
  });

  return new Promise<ExecResult>((resolve) => {
    let spawnError: SockitError | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let stdoutDone = false;
    const endIfFinished = (): void => {
      if (exit === undefined || !stdoutDone || socket.destroyed) return;
      // Read and drop until the peer closes, so its last bytes do not reset the connection; a
      // fixed grace, which the peer's bytes cannot extend.
      endWithin(socket, PEER_CLOSE_GRACE_MS);
    };
    stdout.on('end', () => {
      stdoutDone = true;
      endIfFinished();
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      exited = true;
      spawnError = new SockitError(
        error.code === 'ENOENT' ? 'NOT_FOUND' : 'INTERNAL',
        error.code === 'ENOENT'
          ? `cannot run ${file}: no such program`
          : `cannot run ${file}: ${error.message}`,
        { cause: error },
      );
      socket.destroy();
    });
    child.once('exit', (code, signal) => {
      exited = true;
      exit = { code, signal };
      endIfFinished();
    });
    socket.once('close', () => {
      killGroup('SIGTERM');
      const finish = (): void =>
        resolve({ code: exit?.code ?? null, signal: exit?.signal ?? null, error: spawnError });
      if (exited) return finish();
      // A process that ignores SIGTERM is not allowed to outlive its client.
      const kill = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
      child.once('close', () => {
        clearTimeout(kill);
        finish();
      });
    });
  });
}
