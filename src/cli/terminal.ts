/**
 * The local end of a remote terminal (`sockit shell`, `sockit exec -t`): the local terminal in
 * raw mode, keystrokes to the remote pty, its output to stdout, window changes as `resize`.
 * The terminal is restored on every way out: the command ends, the connection drops, a signal
 * or an exception ends the process (an `exit` hook; Node also resets stdio at exit).
 */

import { fstatSync } from 'node:fs';
import { constants } from 'node:os';
import { isatty, type WriteStream } from 'node:tty';
import type { Command } from 'commander';
import type { JoinedChannel } from '../client/channel.js';
import type { ExecCommand, ExecExit, RemoteProcess, RemotePty, SpawnRemoteOptions } from '../client/exec.js';
import { SockitError } from '../errors.js';
import {
  canRelayDescriptors,
  copyDescriptor,
  descriptorOf,
  type RelayedDirection,
} from '../transport/descriptor-relay.js';
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

/** After the exit, how long the data channel may take to deliver the output's end. */
const CHANNEL_END_MS = 5000;

/**
 * Runs `command` in a remote pty and joins it to the local terminal; resolves with the exit
 * status as `sockit exec` reports it (255 for a connection that failed or dropped). On a plain
 * connection the terminal's bytes go over a data channel, copied between it and stdin/stdout
 * by the addon (transport/descriptor-relay.ts); elsewhere, and for a stdin or stdout the addon
 * cannot poll (a regular file), through frames.
 */
export async function runInTerminal(
  address: string,
  command: ExecCommand,
  request: Omit<SpawnRemoteOptions, 'pty' | 'stdin' | 'channel'>,
  options: ClientCliOptions,
): Promise<number> {
  const local = new LocalTerminal();
  try {
    return await withClient(address, options, async (client) => {
      const remote = client.spawn(command, { ...request, pty: localPty(), channel: canUseChannel() });
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
      remote.stdout.pipe(process.stdout, { end: false });
      remote.stderr.resume();
      const channel = await remote.channel;
      const joined = channel ? joinLocalTerminal(channel, onStdoutError) : undefined;
      const inBand = joined?.input ? undefined : typeInBand(remote);
      try {
        const exit: ExecExit = await remote.exited;
        if (joined) await withinBound(joined.outputEnded, CHANNEL_END_MS);
        local.restore();
        if (joined?.failure) throw joined.failure; // the command was lost with its channel
        return describeExit(address, exit, undefined).exitCode;
      } finally {
        process.stdout.off('resize', onResize);
        process.stdout.off('error', onStdoutError);
        inBand?.stop();
        joined?.stop();
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

/**
 * Keystrokes as `stdin` frames: process.stdin's chunks, with its backpressure; also where the
 * output comes over a data channel but stdin is nothing the addon can poll (a regular file).
 */
function typeInBand(remote: RemoteProcess): { stop(): void } {
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
  return {
    stop() {
      process.stdin.off('data', onInput);
      process.stdin.off('end', onInputEnd);
    },
  };
}

/** Waits for `promise`, but at most `ms`: the server ends the channel before it sends the exit. */
function withinBound(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** The descriptors a terminal client copies between, whatever Node's streams do with theirs. */
const STDIN_FD = 0;
const STDOUT_FD = 1;

/** The local ends of a data channel: stdin copied into it, its bytes copied to stdout. */
interface JoinedTerminal {
  /** The stdin copy; undefined when it could not start (then keystrokes go in band). */
  readonly input: RelayedDirection | undefined;
  /** Settles once the channel's output has ended: the server's end of file, or a reset. */
  readonly outputEnded: Promise<void>;
  /** Set when the output copy could not start (out of descriptors): the channel was cut. */
  readonly failure: SockitError | undefined;
  stop(): void;
}

/**
 * Whether the addon can poll `fd` (a pipe, a socket, a terminal): a data channel copies
 * between those only, and a terminal on a regular file or /dev/null keeps its bytes in band.
 */
function pollable(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFIFO() || stat.isSocket() || (stat.isCharacterDevice() && isatty(fd));
  } catch {
    return false;
  }
}

/** Whether this terminal's bytes can go over a data channel: the addon, and stdin/stdout it can poll. */
function canUseChannel(): boolean {
  return canRelayDescriptors() && pollable(STDIN_FD) && pollable(STDOUT_FD);
}

/**
 * Copies stdin into the channel and the channel to stdout, in C, with no JavaScript between a
 * keystroke and the socket or between the echo and the terminal. What the server sent right
 * behind `attached` is written first.
 */
function joinLocalTerminal(channel: JoinedChannel, onStdoutError: () => void): JoinedTerminal {
  const { socket, early } = channel;
  const fd = descriptorOf(socket);
  let output: RelayedDirection | undefined;
  let outputDone!: () => void;
  const outputEnded = new Promise<void>((resolve) => {
    outputDone = resolve;
  });
  let failure: SockitError | undefined;
  const startOutput = (): void => {
    try {
      output = copyDescriptor(fd, STDOUT_FD, (error) => {
        output = undefined;
        if (error?.code === 'EPIPE') onStdoutError();
        outputDone();
      });
    } catch (error) {
      // The server copies into the channel already: cutting it ends the command there too.
      failure = new SockitError(
        'CLOSED',
        `the data channel's output cannot be copied: ${(error as Error).message}`,
      );
      socket.destroy();
      outputDone();
    }
  };
  if (early.length > 0) process.stdout.write(early, startOutput);
  else startOutput();
  let input: RelayedDirection | undefined;
  // A channel cut above has nothing to type into.
  if (failure === undefined) {
    try {
      input = copyDescriptor(STDIN_FD, fd, (error) => {
        input = undefined;
        if (error === undefined && !process.stdin.isTTY && !socket.destroyed) socket.write(CTRL_D);
      });
    } catch {
      input = undefined; // out of descriptors: the keystrokes go as frames
    }
  }
  return {
    input,
    outputEnded,
    get failure() {
      return failure;
    },
    stop() {
      input?.stop();
      output?.stop();
      socket.destroy();
    },
  };
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
