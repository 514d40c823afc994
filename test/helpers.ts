/** Shared test helpers: temp dirs, servers on port 0, and the built CLI run as a child process. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChatRoom } from '../src/client/chat.js';
import { type ServeOptions, type Server, serve } from '../src/server/server.js';

/** The built CLI entry point (tests run from build/test, the CLI is build/src/cli/main.js). */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** A fresh temp directory, removed by the returned cleanup. */
export async function tempDir(
  prefix = 'sockit-test-',
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export const TEST_TOKEN = 'test-token-not-secret';

/**
 * Starts a server on 127.0.0.1 port 0 with a known token and a private state dir.
 * Call `stop()` in a finally/after hook.
 */
export async function startServer(
  options: Partial<ServeOptions> = {},
): Promise<{ server: Server; address: string; stateDir: string; stop: () => Promise<void> }> {
  const state = await tempDir('sockit-state-');
  const server = await serve({
    listen: 'tcp://127.0.0.1:0',
    token: TEST_TOKEN,
    stateDir: state.path,
    ...options,
  });
  return {
    server,
    address: server.address,
    stateDir: state.path,
    stop: async () => {
      await server.close(1000);
      await state.cleanup();
    },
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs `sockit ARGS…` as a real child process, feeding `input` to stdin; resolves when it exits. */
export function runCli(
  args: string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, SOCKIT_TOKEN: '', ...options.env },
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    // A hung CLI must fail the test, not hang the suite.
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBytes,
      });
    });
    child.stdin.on('error', () => {}); // the CLI may exit before reading all input
    child.stdin.end(options.input ?? '');
  });
}

/** Resolves with the first stdout line of a long-running child that matches `pattern`. */
export function waitForLine(stream: NodeJS.ReadableStream, pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      for (const line of buffered.split('\n')) {
        const match = pattern.exec(line);
        if (match) {
          stream.off('data', onData);
          resolve(match);
          return;
        }
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`stream ended before a line matched ${pattern}: ${buffered}`)));
  });
}

/** Resolves once `predicate` holds, re-checked on every message, presence and notice of `room`. */
export function untilChat(room: ChatRoom, predicate: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const events = ['message', 'presence', 'notice'] as const;
    const check = (): void => {
      if (!predicate()) return;
      for (const event of events) room.off(event, check);
      resolve();
    };
    for (const event of events) room.on(event, check);
    check();
  });
}
