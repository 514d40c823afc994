import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import { loadNative } from '../../native.js';
import { copyDescriptor, type RelayedDirection } from '../../transport/descriptor-relay.js';
import type { ExecPlan } from './policy.js';
import { PtyInput } from './pty-input.js';

/**
 * How commands are started. `native`: clone(CLONE_VM | CLONE_VFORK) through sockit's addon
 * (`native/spawn.c`), which does not fork the server: ~2× the rate of `child_process.spawn` from
 * a fresh process and flat as the server's heap grows, where fork slows down with it. `node`:
 * child_process.spawn.
 */
export type Spawner = 'native' | 'node';

/**
 * The parts of a command's stdout or stderr that a running command uses: `data` chunks, `error`,
 * `close` once it has ended; a Readable has them too.
 */
export interface CommandOutput extends EventEmitter {
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
}

/** The parts of a child process a running command uses; ChildProcess has them too. */
export interface CommandProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: CommandOutput | null;
  readonly stderr: CommandOutput | null;
  /** Present on a command that runs in a pseudo-terminal: sets its window size (SIGWINCH). */
  resize?(rows: number, cols: number): void;
  /** Present on a command in a pseudo-terminal: moves its bytes over a data channel (PtyChild). */
  relayOver?(
    socketFd: number,
    outputLimit: number,
    onOutputEnd: (error: NodeJS.ErrnoException | undefined) => void,
    onInputFailed: (error: NodeJS.ErrnoException) => void,
  ): TerminalRelay;
  /**
   * True when the spawner itself has killed the leader's process group by the time `exit` is
   * emitted (the addon does, before reaping the leader); otherwise the caller must.
   */
  readonly groupKilledAtExit?: boolean;
}

interface NativeAddon {
  /** An environment's `NAME=value` strings converted for the spawns once (freed with the handle). */
  prepareEnv(list: string[]): EnvHandle;
  spawn(
    file: string,
    argv: string[],
    env: EnvHandle,
    /** A path, or a held directory's descriptor (the child fchdir()s to it). */
    cwd: string | number,
    pipeStdin: boolean,
    onExit: (code: number | null, signal: number | null) => void,
  ): [pid: number, stdinFd: number, stdoutFd: number, stderrFd: number];
  spawnPty(
    file: string,
    argv: string[],
    env: EnvHandle,
    cwd: string,
    rows: number,
    cols: number,
    onExit: (code: number | null, signal: number | null) => void,
  ): [pid: number, readerFd: number, writerFd: number];
  resize(masterFd: number, rows: number, cols: number): void;
  /** Reads `fd` on Node's loop: a chunk per read, then (null, errno name or null) once; closes it. */
  readOutput(fd: number, onChunk: (chunk: Buffer | null, error?: string | null) => void): OutputHandle;
  pauseOutput(handle: OutputHandle): void;
  resumeOutput(handle: OutputHandle): void;
  /** Stops reading and closes the descriptor, with no further callback. */
  closeOutput(handle: OutputHandle): void;
}

/** An environment the addon has converted (prepareEnv). */
type EnvHandle = { readonly __brand: 'sockit:env' };

/** The addon's reader of one descriptor; must not be passed again once it is done. */
type OutputHandle = { readonly __brand: 'sockit:output' };

/** A terminal's bytes moving over a data channel: how many went each way so far. */
export interface TerminalRelay {
  /** Output bytes the command's terminal sent to the channel. */
  readonly outputBytes: number;
  /** Keystroke bytes from the channel into the terminal. */
  readonly inputBytes: number;
}

/** Without the addon (not built, or no pidfd_open: Linux < 5.3) commands start through child_process. */
const loadAddon = (): NativeAddon | null => loadNative<NativeAddon>('sockit_spawn');

/** Whether the native spawner can be used here (its addon is built and loads). */
export function hasNativeSpawner(): boolean {
  return loadAddon() !== null;
}

/**
 * Whether commands can run in a pseudo-terminal here: only through the addon (Node itself has
 * no posix_openpt), see docs/exec.md "Terminals".
 */
export function hasPty(): boolean {
  return loadAddon() !== null;
}

/**
 * Starts `plan` as the leader of a new process group, stdout and stderr piped, stdin piped when
 * the request asked for it. A failure to start throws (native) or arrives as an `error` event
 * with no pid (node), an ErrnoException either way.
 */
export function startProcess(plan: ExecPlan, spawner: Spawner): CommandProcess {
  if (plan.pty) {
    const native = loadAddon();
    // The service refuses pty requests without the addon; this is the last line of defence.
    if (!native) throw Object.assign(new Error('pseudo-terminals need the native addon'), { code: 'ENOSYS' });
    return new PtyChild(native, plan, plan.pty);
  }
  if (spawner === 'native') {
    const native = loadAddon();
    if (native) return new NativeChild(native, plan);
  }
  const child: ChildProcess = spawn(plan.file, plan.args, {
    // A held directory by its magic link in *our* /proc: the forked child chdir()s to the held
    // inode itself, whatever the path now names.
    cwd: plan.cwdHandle ? `/proc/${process.pid}/fd/${plan.cwdHandle.fd}` : plan.cwd,
    env: plan.env,
    // Its own process group: one kill(-pid) reaches everything it starts.
    detached: true,
    stdio: [plan.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  return child;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]),
);

function signalName(signal: number | null): NodeJS.Signals | null {
  return signal === null ? null : (SIGNAL_NAMES.get(signal) ?? null);
}

/**
 * The addon's prepared forms of environments that are used again and again: a server's base
 * environment is one object, passed for every command that does not set variables of its own,
 * and is turned into C strings once instead of at every spawn (the addon's prepareEnv).
 */
const preparedEnvs = new WeakMap<NodeJS.ProcessEnv, EnvHandle>();

/** The addon's form of an environment, `NAME=value` strings made once (the same object is never changed). */
function preparedEnv(native: NativeAddon, env: NodeJS.ProcessEnv): EnvHandle {
  let prepared = preparedEnvs.get(env);
  if (prepared !== undefined) return prepared;
  const list: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined) list.push(`${name}=${value}`);
  }
  prepared = native.prepareEnv(list);
  preparedEnvs.set(env, prepared);
  return prepared;
}

/**
 * A process started by the addon, with ChildProcess's events: `exit (code, signal)` when it
 * ends, `close (code, signal)` once it has ended and its stdout and stderr are closed.
 */
class NativeChild extends EventEmitter implements CommandProcess {
  readonly groupKilledAtExit = true;
  readonly pid: number;
  readonly stdin: Socket | null;
  readonly stdout: NativeOutput;
  readonly stderr: NativeOutput;
  #exit: [number | null, NodeJS.Signals | null] | undefined;
  #openOutputs = 2;

  readonly #native: NativeAddon;

  constructor(native: NativeAddon, plan: ExecPlan) {
    super();
    this.#native = native;
    const [pid, stdinFd, stdoutFd, stderrFd] = native.spawn(
      plan.file,
      [plan.argv0 ?? plan.file, ...plan.args],
      preparedEnv(native, plan.env),
      plan.cwdHandle?.fd ?? plan.cwd,
      plan.stdin === true,
      (code, signal) => this.#onExit(code, signalName(signal)),
    );
    this.pid = pid;
    this.stdin = stdinFd >= 0 ? new Socket({ fd: stdinFd, readable: false, writable: true }) : null;
    this.stdout = this.#output(stdoutFd);
    this.stderr = this.#output(stderrFd);
  }

  #output(fd: number): NativeOutput {
    // Told directly rather than through a 'close' listener: one call instead of a once-wrapper
    // per pipe and command.
    return new NativeOutput(this.#native, fd, undefined, this.#outputClosed);
  }

  readonly #outputClosed = (): void => {
    this.#openOutputs--;
    this.#closeIfDone();
  };

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.#exit = [code, signal];
    // Our end of the stdin socketpair: nothing else closes it when the request never sent
    // stdin-end (one descriptor per command, until EMFILE). ChildProcess does the same on exit.
    this.stdin?.destroy();
    this.emit('exit', code, signal);
    this.#closeIfDone();
  }

  #closeIfDone(): void {
    if (this.#exit !== undefined && this.#openOutputs === 0) this.emit('close', ...this.#exit);
  }
}

/**
 * A command's stdout or stderr read by the addon (`readOutput`), not a net.Socket: per command
 * the two sockets cost more CPU than the whole C spawn (docs/benchmarks.md, exec2). Events:
 * `data (chunk)`, `error (err)` for a failed read, `close` once, at end-of-file, after an error
 * or after `destroy()`. Reading starts at once; `pause()` stops it (the child then blocks on a
 * full pipe), `resume()` restarts it.
 */
class NativeOutput extends EventEmitter implements CommandOutput {
  readonly #native: NativeAddon;
  /** Undefined once done: the addon has let go of it. */
  #handle: OutputHandle | undefined;
  readonly #onClose: (() => void) | undefined;
  /** The descriptor read, open until `close` (a data channel's copy reads a duplicate of it). */
  readonly descriptor: number;

  /**
   * `endOfFile`: an errno that means end-of-file here, not an error (EIO on a terminal's master).
   * `onClose`: the owner's own hook, called just before the `close` event.
   */
  constructor(native: NativeAddon, fd: number, endOfFile?: string, onClose?: () => void) {
    super();
    this.#native = native;
    this.#onClose = onClose;
    this.descriptor = fd;
    this.#handle = native.readOutput(fd, (chunk, error) => {
      if (chunk !== null) {
        this.emit('data', chunk);
        return;
      }
      this.#handle = undefined;
      if (error && error !== endOfFile)
        this.emit('error', Object.assign(new Error(`read: ${error}`), { code: error }));
      this.#closed();
    });
  }

  #closed(): void {
    this.#onClose?.();
    this.emit('close');
  }

  pause(): this {
    if (this.#handle) this.#native.pauseOutput(this.#handle);
    return this;
  }

  resume(): this {
    if (this.#handle) this.#native.resumeOutput(this.#handle);
    return this;
  }

  destroy(): this {
    const handle = this.#handle;
    if (handle === undefined) return this;
    this.#handle = undefined;
    this.#native.closeOutput(handle);
    this.#closed();
    return this;
  }
}

/**
 * A process in a pseudo-terminal (the addon's spawnPty). A terminal merges stdout and stderr
 * (`stderr` is null); the master carries both directions, through two descriptors of it. The
 * first is read by the addon's uv_poll reader (`readOutput`, as NativeChild's pipes), one read
 * and one callback per echo, which on a keystroke's round trip costs less than tty.ReadStream's
 * stream machinery (docs/benchmarks.md, keystroke). Keystrokes are written to the second by a
 * PtyInput, which keeps a Writable's backpressure and, unlike a tty stream, neither blocks nor
 * spins when the command stops reading its input (pty-input.ts). The kernel reports the
 * terminal's end, once nothing holds the slave side open, as EIO on a read: that is end-of-file
 * here, not an error. Events as NativeChild.
 */
class PtyChild extends EventEmitter implements CommandProcess {
  readonly groupKilledAtExit = true;
  readonly pid: number;
  readonly stdin: PtyInput;
  readonly stdout: CommandOutput;
  readonly stderr = null;
  readonly #native: NativeAddon;
  /**
   * The writer's descriptor, also the one resizes go to, until the writer is destroyed: once the
   * exit is seen and the reader has closed. The reader closes its own at the EIO that follows the
   * command's last close of the slave, which a command may do itself just before it exits
   * (coreutils close stdout and stderr at exit); were that the master's last descriptor, the
   * kernel would hang the terminal up and kill the command with SIGHUP. sshd, too, keeps the
   * master until the child is reaped.
   */
  #writerFd: number | undefined;
  readonly #writer: PtyInput;
  #exit: [number | null, NodeJS.Signals | null] | undefined;
  #closed = false;
  /** Over a data channel (relayOver): the two directions the addon moves, and their counts. */
  #outputCopy: RelayedDirection | undefined;
  #inputCopy: RelayedDirection | undefined;
  #relayed = { outputBytes: 0, inputBytes: 0 };

  constructor(native: NativeAddon, plan: ExecPlan, pty: NonNullable<ExecPlan['pty']>) {
    super();
    this.#native = native;
    const [pid, readerFd, writerFd] = native.spawnPty(
      plan.file,
      [plan.argv0 ?? plan.file, ...plan.args],
      preparedEnv(native, plan.env),
      // A held directory (--exec-cwd-root) by its descriptor: the child chdirs before exec,
      // while it still has our descriptors, so the path names the held inode.
      plan.cwdHandle ? `/proc/self/fd/${plan.cwdHandle.fd}` : plan.cwd,
      pty.rows,
      pty.cols,
      (code, signal) => this.#onExit(code, signalName(signal)),
    );
    this.pid = pid;
    this.#writerFd = writerFd;
    const writer = new PtyInput(writerFd);
    writer.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EIO') this.emit('error', error);
    });
    this.#writer = writer;
    this.stdin = writer;
    const reader = new NativeOutput(native, readerFd, 'EIO');
    reader.on('error', (error: NodeJS.ErrnoException) => this.emit('error', error));
    reader.once('close', () => {
      this.#closed = true;
      // Destroyed (a kill after the leader's grace) or at its end: the copy lets go of its
      // duplicate of the master too, so closing really hangs the terminal up.
      this.#stopCopy('output');
      this.#closeIfDone();
    });
    this.stdout = reader;
  }

  /**
   * Moves the terminal's bytes over a data channel from now on, both ways in C
   * (transport/descriptor-relay.ts): output from the master straight into the socket behind
   * `socketFd`, the socket's bytes straight into the master, no JavaScript on the way of a
   * keystroke or its echo. `stdout` then emits no `data`: it closes at the output's end (the
   * same EIO), after `onOutputEnd(undefined)`; a failed copy (the channel reset; EFBIG past
   * `outputLimit` bytes) calls `onOutputEnd(error)` and closes it too. The input's end: the
   * client closed its side (keystrokes are over, the command runs on) or the terminal is gone
   * (EIO, EPIPE); any other failure is the channel's (ECONNRESET, ETIMEDOUT) and goes to
   * `onInputFailed` at once, output or not. `stdin` frames still reach the terminal. Throws (an
   * ErrnoException) when the copies cannot start; nothing has changed then.
   */
  relayOver(
    socketFd: number,
    outputLimit: number,
    onOutputEnd: (error: NodeJS.ErrnoException | undefined) => void,
    onInputFailed: (error: NodeJS.ErrnoException) => void,
  ): TerminalRelay {
    const reader = this.stdout as NativeOutput;
    reader.pause();
    const relayed = this.#relayed;
    this.#inputCopy = copyDescriptor(socketFd, this.#writerFd!, (error, bytes) => {
      relayed.inputBytes = bytes;
      this.#inputCopy = undefined;
      if (error !== undefined && error.code !== 'EIO' && error.code !== 'EPIPE') onInputFailed(error);
    });
    try {
      this.#outputCopy = copyDescriptor(
        reader.descriptor,
        socketFd,
        (error, bytes) => {
          relayed.outputBytes = bytes;
          this.#outputCopy = undefined;
          onOutputEnd(error);
          reader.destroy();
        },
        outputLimit,
      );
    } catch (error) {
      this.#stopCopy('input');
      throw error;
    }
    return {
      get outputBytes() {
        return relayed.outputBytes;
      },
      get inputBytes() {
        return relayed.inputBytes;
      },
    };
  }

  #stopCopy(which: 'output' | 'input'): void {
    const copy = which === 'output' ? this.#outputCopy : this.#inputCopy;
    if (copy === undefined) return;
    if (which === 'output') {
      this.#relayed.outputBytes = copy.moved();
      this.#outputCopy = undefined;
    } else {
      this.#relayed.inputBytes = copy.moved();
      this.#inputCopy = undefined;
    }
    copy.stop();
  }

  resize(rows: number, cols: number): void {
    // Once closed the descriptor number may already belong to something else.
    if (this.#writerFd !== undefined) this.#native.resize(this.#writerFd, rows, cols);
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.#exit = [code, signal];
    this.emit('exit', code, signal);
    this.#closeIfDone();
  }

  #closeIfDone(): void {
    if (this.#exit === undefined || !this.#closed) return;
    // Before the writer closes: the input copy's duplicate of the master must not outlive it.
    this.#stopCopy('input');
    this.#writerFd = undefined;
    this.#writer.destroy();
    this.emit('close', ...this.#exit);
  }
}
