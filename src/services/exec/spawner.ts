import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { ExecPlan } from './policy.js';

/**
 * How commands are started. `native`: posix_spawn through sockit's addon (`native/spawn.c`),
 * which does not fork the server: ~2× the rate of `child_process.spawn` from a fresh process and
 * flat as the server's heap grows, where fork slows down with it. `node`: child_process.spawn.
 */
export type Spawner = 'native' | 'node';

/** The parts of a child process a running command uses; ChildProcess has them too. */
export interface CommandProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
}

interface NativeAddon {
  spawn(
    file: string,
    argv: string[],
    env: string[],
    /** A path, or a held directory's descriptor (the child fchdir()s to it). */
    cwd: string | number,
    pipeStdin: boolean,
    onExit: (code: number | null, signal: number | null) => void,
  ): [pid: number, stdinFd: number, stdoutFd: number, stderrFd: number];
}

/** Built by `npm install` (scripts/build-native.mjs) into native/build; resolved from build/src/services/exec. */
const ADDON_PATH = '../../../../native/build/Release/sockit_spawn.node';

let addon: NativeAddon | null | undefined;

function loadAddon(): NativeAddon | null {
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
    } catch {
      addon = null; // not built (no compiler, not Linux) or no pidfd_open: child_process it is
    }
  }
  return addon;
}

/** Whether the native spawner can be used here (its addon is built and loads). */
export function hasNativeSpawner(): boolean {
  return loadAddon() !== null;
}

/**
 * Starts `plan` as the leader of a new process group, stdout and stderr piped, stdin piped when
 * the request asked for it. A failure to start throws (native) or arrives as an `error` event
 * with no pid (node), an ErrnoException either way.
 */
export function startProcess(plan: ExecPlan, spawner: Spawner): CommandProcess {
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

/**
 * A process started by the addon, with ChildProcess's events: `exit (code, signal)` when it
 * ends, `close (code, signal)` once it has ended and its stdout and stderr are closed.
 */
class NativeChild extends EventEmitter implements CommandProcess {
  readonly pid: number;
  readonly stdin: Socket | null;
  readonly stdout: Socket;
  readonly stderr: Socket;
  #exit: [number | null, NodeJS.Signals | null] | undefined;
  #openOutputs = 2;

  constructor(native: NativeAddon, plan: ExecPlan) {
    super();
    const env: string[] = [];
    for (const [name, value] of Object.entries(plan.env)) {
      if (value !== undefined) env.push(`${name}=${value}`);
    }
    const [pid, stdinFd, stdoutFd, stderrFd] = native.spawn(
      plan.file,
      [plan.file, ...plan.args],
      env,
      plan.cwdHandle?.fd ?? plan.cwd,
      plan.stdin === true,
      (code, signal) => this.#onExit(code, signal === null ? null : (SIGNAL_NAMES.get(signal) ?? null)),
    );
    this.pid = pid;
    this.stdin = stdinFd >= 0 ? new Socket({ fd: stdinFd, readable: false, writable: true }) : null;
    this.stdout = this.#output(stdoutFd);
    this.stderr = this.#output(stderrFd);
  }

  #output(fd: number): Socket {
    const socket = new Socket({ fd, readable: true, writable: false });
    socket.once('close', () => {
      this.#openOutputs--;
      this.#closeIfDone();
    });
    return socket;
  }

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
