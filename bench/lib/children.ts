/**
 * Child processes of a benchmark run: servers under test and load generators. Every child is
 * registered so that a finished, failed or interrupted run never leaves one behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { waitListening } from './ports.js';

const running = new Set<ChildProcess>();
const temporary = new Set<string>();

function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
  for (const path of temporary) rmSync(path, { recursive: true, force: true });
  temporary.clear();
}

/** Kills `child` when the run exits, if it is still running then (a client under test). */
export function killOnExit(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

/** Removes `path` when the run exits, even when it is interrupted (a server's state dir). */
export function removeOnExit(path: string): void {
  temporary.add(path);
}

process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** A running server child: where it listens and how to stop it. */
export interface ServerChild {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** SIGTERM, then SIGKILL if it has not exited within 2 s. */
  stop(): Promise<void>;
}

export interface StartServerOptions {
  name: string;
  command: string;
  args: string[];
  /** A line of stdout (or stderr) whose first capture group is the listening port. */
  readyPattern?: RegExp;
  /** For a server that prints nothing when ready (sshd -D): ready once this port listens. */
  readyPort?: number;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /**
   * `ignore` sends the child's stderr to /dev/null: for a server that logs every message (the
   * Python seed does), so that reading its log does not take CPU from the run. The ready line
   * must then come on stdout. Default `pipe`.
   */
  stderr?: 'pipe' | 'ignore';
}

/**
 * Starts a server child and resolves once it prints its ready line. Its stderr is drained and
 * dropped after startup: a server that logs per message (the Python seed does) must never
 * block on a full pipe, and its log volume is part of what it costs.
 */
export function startServerChild(options: StartServerOptions): Promise<ServerChild> {
  const child = spawn(options.command, options.args, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', options.stderr ?? 'pipe'],
  });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => running.delete(child));

  let output = '';
  return new Promise<ServerChild>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${options.name} did not become ready in time; it printed:\n${output}`));
    }, options.timeoutMs ?? 15_000);
    let ready = false;
    const onOutput = (chunk: Buffer): void => {
      if (output.length > 20_000) return; // only the startup lines matter
      output += chunk.toString('utf8');
      const match = options.readyPattern?.exec(output);
      if (match) becomeReady(Number(match[1]));
    };
    const becomeReady = (port: number): void => {
      if (ready) return;
      ready = true;
      clearTimeout(timer);
      child.stdout!.off('data', onOutput);
      child.stderr?.off('data', onOutput);
      // Keep draining so a chatty server never blocks on its pipes.
      child.stdout!.resume();
      child.stderr?.resume();
      resolve({
        name: options.name,
        pid: child.pid!,
        port,
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const timeout = new Promise<'timeout'>((done) => setTimeout(() => done('timeout'), 2000).unref());
          if ((await Promise.race([exited, timeout])) === 'timeout') {
            child.kill('SIGKILL');
            await exited;
          }
        },
      });
    };
    child.stdout!.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    if (options.readyPort !== undefined) {
      const port = options.readyPort;
      waitListening(port, () =>
        child.exitCode !== null ? `${options.name} exited: ${output}` : undefined,
      ).then(
        () => becomeReady(port),
        () => {}, // the exit handler below reports it
      );
    }
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${options.name}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`${options.name} exited (${signal ?? code}) before it was ready; it printed:\n${output}`),
      );
    });
  });
}

/**
 * Runs a child to completion, handing each stdout line to `onLine`. Killed after `timeoutMs`
 * so a stuck generator cannot stall the run.
 */
export function runChild(
  command: string,
  args: string[],
  onLine: (line: string) => void,
  timeoutMs: number,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stderr = '';
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => {
    pending += text;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString('utf8');
  });
  const timer = setTimeout(() => {
    stderr += `\n(killed after ${timeoutMs} ms)`;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      if (pending) onLine(pending);
      resolve({ code, stderr });
    });
  });
}
