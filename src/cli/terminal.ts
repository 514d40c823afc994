/**
 * The local end of a remote terminal (`sockit shell`, `sockit exec -t`): the local terminal in
 * raw mode, keystrokes to the remote pty, its output to stdout, window changes as `resize`.
 * The terminal is restored on every way out: the command ends, the connection drops, a signal
 * or an exception ends the process (an `exit` hook; Node also resets stdio at exit).
 */
import { constants } from 'node:os';
import type { WriteStream } from 'node:tty';
import type { Command } from 'commander';
import type { ExecCommand, ExecExit, RemotePty, SpawnRemoteOptions } from '../client/exec.js';
import { SockitError } from '../errors.js';
import { type ClientCliOptions, withClient } from './common.js';
import { describeExit, EXEC_EXIT, exitForError, printError } from './exec-common.js';

/** `-t` (repeatable: `-tt`) and `-T`. */
export interface TerminalCliOptions {
  /** How many times -t was given. */
  tty: number;
  disableTty?: boolean;
}

/** Adds ssh's -t / -tt / -T to a command. */
export function addTerminalOptions(command: Command, ttyHelp: string): Command {
  return command
    .option(
      '-t, --tty',
      `${ttyHelp}; -tt even without a local terminal`,
      (_value, count: number) => count + 1,
      0,
    )
    .option('-T, --disable-tty', 'never ask for a pseudo-terminal: plain pipes');
}

/** What -t / -T / -tt and the local terminal decide together. */
export interface TerminalChoice {
  /** Ask the server for a pseudo-terminal. */
  pty: boolean;
  /** Why a requested terminal is not used, for one line on stderr. */
  warning?: string;
}

/**
 * ssh's rule: `-T` never; `-tt` always; `-t` (or `sockit shell` by default) when local stdin is
 * a terminal, else pipes with a warning; otherwise (`exec` without -t) pipes.
 */
export function chooseTerminal(ttyCount: number, noTty: boolean, wantedByDefault: boolean): TerminalChoice {
  if (noTty) return { pty: false };
  if (ttyCount >= 2) return { pty: true };
  if (ttyCount === 0 && !wantedByDefault) return { pty: false };
  if (process.stdin.isTTY) return { pty: true };
  return {
    pty: false,
    warning: 'no pseudo-terminal: local stdin is not a terminal (-tt forces one); using pipes',
  };
}

/** The remote terminal's TERM and size: the local terminal's, or TERM=dumb 24x80 without one. */
export function localPty(): RemotePty {
  const out = process.stdout as Partial<WriteStream>;
  return {
    term: process.env.TERM || 'dumb',
    rows: out.isTTY && out.rows ? out.rows : 24,
    cols: out.isTTY && out.columns ? out.columns : 80,
  };
}

/** End-of-transmission: what a terminal reads as end-of-file when -tt has piped input end. */
const CTRL_D = Buffer.from([4]);

/**
 * Runs `command` in a remote pty and joins it to the local terminal; resolves with the exit
 * status as `sockit exec` reports it (255 for a connection that failed or dropped).
 */
export async function runInTerminal(
  address: string,
  command: ExecCommand,
  request: Omit<SpawnRemoteOptions, 'pty' | 'stdin'>,
  options: ClientCliOptions,
): Promise<number> {
  const local = new LocalTerminal();
  try {
    return await withClient(address, options, async (client) => {
      const remote = client.spawn(command, { ...request, pty: localPty() });
      local.enterRaw();
      const onResize = (): void => {
        const { rows, cols } = localPty();
        remote.resize(rows, cols);
      };
      process.stdout.on('resize', onResize);
      // Our reader went away: restore the terminal, stop the command, exit as a broken pipe would.
      const onStdoutError = (): void => {
        local.restore();
        remote.cancel();
        process.exit(EXEC_EXIT.signalBase + constants.signals.SIGPIPE);
      };
      process.stdout.on('error', onStdoutError);
      const stdin = remote.stdin!;
      stdin.on('error', () => {}); // the command is gone: keystrokes are dropped
      const onInput = (chunk: Buffer): void => {
        if (!stdin.write(chunk)) {
          process.stdin.pause();
          stdin.once('drain', () => process.stdin.resume());
        }
      };
      const onInputEnd = (): void => {
        if (!process.stdin.isTTY) stdin.write(CTRL_D);
      };
      process.stdin.on('data', onInput);
      process.stdin.once('end', onInputEnd);
      remote.stdout.pipe(process.stdout, { end: false });
      remote.stderr.resume();
      try {
        const exit: ExecExit = await remote.exited;
        local.restore();
        return describeExit(address, exit, undefined).exitCode;
      } finally {
        process.stdout.off('resize', onResize);
        process.stdout.off('error', onStdoutError);
        process.stdin.off('data', onInput);
        process.stdin.off('end', onInputEnd);
        remote.stdout.unpipe(process.stdout);
      }
    });
  } catch (error) {
    local.restore();
    printError(error);
    return exitForError(error instanceof SockitError ? error.code : 'INTERNAL');
  } finally {
    local.dispose();
  }
}

/** Signals that end the CLI while a terminal is raw: restore it first, exit as the signal would. */
const FATAL_SIGNALS = ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

/** The local terminal's mode: raw while a remote terminal runs, restored exactly once. */
class LocalTerminal {
  #raw = false;
  readonly #onExit = (): void => this.restore();
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.restore();
    process.exit(EXEC_EXIT.signalBase + constants.signals[signal]);
  };

  constructor() {
    process.on('exit', this.#onExit);
    for (const signal of FATAL_SIGNALS) process.on(signal, this.#onSignal);
  }

  /** Keystrokes go through unprocessed (Ctrl-C is a byte for the remote terminal, not our SIGINT). */
  enterRaw(): void {
    if (!process.stdin.isTTY || this.#raw) return;
    process.stdin.setRawMode(true);
    this.#raw = true;
  }

  restore(): void {
    if (!this.#raw) return;
    this.#raw = false;
    try {
      process.stdin.setRawMode(false);
    } catch {
      // The terminal is gone (hung up): nothing left to restore.
    }
  }

  /** Restores the terminal and lets go of stdin so the process can end. */
  dispose(): void {
    this.restore();
    process.off('exit', this.#onExit);
    for (const signal of FATAL_SIGNALS) process.off(signal, this.#onSignal);
    process.stdin.pause();
    process.stdin.destroy();
  }
}
