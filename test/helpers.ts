/** Shared test helpers: temp dirs, servers on port 0, and the built CLI run as a child process. */
import { type ChildProcessByStdio, type SpawnOptions, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ChatRoom } from '../src/client/chat.js';
import type { FrameDeclarations, FrameSpec } from '../src/protocol/schema.js';
import { type ServeOptions, type Server, serve } from '../src/server/server.js';
import { TEST_TOKEN } from './token.js';

/**
 * The CLI as installed (package.json "bin"): bin/sockit.cjs, which runs each command's bundle
 * (build/cli/, made by `npm run build`) and the `_all` bundle for the rest. Tests run from
 * build/test.
 */
export const CLI = fileURLToPath(new URL('../../bin/sockit.cjs', import.meta.url));

/** The suite's setup module (test/setup.ts), which `npm test` loads with --import. */
const SETUP = fileURLToPath(new URL('./setup.js', import.meta.url));

/** A fixture test file (test/fixtures/NAME, built), for tests of the runner's checks. */
export const fixture = (name: string): string =>
  fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/**
 * Runs one test file (a fixture under test/fixtures) as its own `node --test` with the suite's
 * setup, in an environment like a user's shell (no suite dirs): to test what the runner does with it.
 */
export function runTestFile(
  file: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  const clean = { ...process.env };
  for (const name of [
    'SOCKIT_STATE_DIR',
    'XDG_STATE_HOME',
    'XDG_CONFIG_HOME',
    'XDG_DATA_HOME',
    'XDG_CACHE_HOME',
  ]) {
    delete clean[name];
  }
  // NODE_TEST_CONTEXT would make the child report to this runner instead of running its own.
  delete clean.NODE_TEST_CONTEXT;
  const child = spawn(
    process.execPath,
    ['--test', '--test-reporter=tap', '--test-timeout=60000', '--import', SETUP, file],
    {
      env: { ...clean, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk;
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

/** A fresh temp directory, removed by the returned cleanup. */
export async function tempDir(
  prefix = 'sockit-test-',
): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export { TEST_TOKEN };

/** The stream transports a service's shared suite runs over (see describeOverTransports). */
export const TRANSPORTS = ['tcp', 'tls', 'unix'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** Where a test server listens: loopback port 0 for tcp/tls, a socket file in `dir` for unix. */
export function listenAddress(transport: Transport, dir: string): string {
  return transport === 'unix' ? `unix:${join(dir, 's.sock')}` : `${transport}://127.0.0.1:0`;
}

/**
 * One describe block per transport, the same tests in each (as the core's echo suite does):
 * `body(transport)` registers them; pass the transport on to startServer and its wrappers.
 */
export function describeOverTransports(name: string, body: (transport: Transport) => void): void {
  for (const transport of TRANSPORTS) describe(`${name} (${transport})`, () => body(transport));
}

/** Stops of the servers startServer started and nobody stopped yet. */
const running = new Set<() => Promise<void>>();

// A test that fails before its own cleanup must not leave its server open for the rest of the
// file (and the leak check): the file's last hook stops what is left.
after(() => Promise.all([...running].map((stop) => stop())));

/**
 * serve(), for tests that need it bare (their own listen address, no state dir): the file's last
 * hook closes the server if the test did not (close() is idempotent).
 */
export async function serveForFile(options: ServeOptions): Promise<Server> {
  const server = await serve(options);
  running.add(() => server.close(0));
  return server;
}

/**
 * spawn() with stdin from /dev/null and piped stdout/stderr, for tests that drive a child by hand
 * (signals, half-read output): the file's last hook SIGKILLs it if a failed test left it running.
 */
export function spawnForFile(
  file: string,
  args: string[],
  options: Omit<SpawnOptions, 'stdio'> = {},
): ChildProcessByStdio<null, Readable, Readable> {
  const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('close', () => resolve());
      child.kill('SIGKILL');
    });
  running.add(kill);
  child.once('close', () => running.delete(kill));
  return child;
}

/** serve() options for a test server, plus the transport it listens on (default tcp). */
export type TestServeOptions = Partial<ServeOptions> & { transport?: Transport };

/**
 * Starts a server on 127.0.0.1 port 0 (or the given transport) with a known token and a private
 * state dir (which also holds its TLS certificate, the client's pin and a unix socket).
 * Call `stop()` in a finally/after hook.
 */
export async function startServer(
  options: TestServeOptions = {},
): Promise<{ server: Server; address: string; stateDir: string; stop: () => Promise<void> }> {
  const { transport = 'tcp', ...serveOptions } = options;
  const state = await tempDir('sockit-state-');
  let server: Server;
  try {
    server = await serve({
      listen: listenAddress(transport, state.path),
      token: TEST_TOKEN,
      stateDir: state.path,
      ...serveOptions,
    });
  } catch (error) {
    await state.cleanup();
    throw error;
  }
  // A suite "over tls" must not quietly run over tcp.
  if (!options.listen && !server.address.startsWith(`${transport}:`)) {
    await server.close(0);
    await state.cleanup();
    throw new Error(`asked for ${transport}, listening on ${server.address}`);
  }
  const stop = async (): Promise<void> => {
    running.delete(stop);
    await server.close(1000);
    await state.cleanup();
  };
  running.add(stop);
  return { server, address: server.address, stateDir: state.path, stop };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/**
 * Runs `sockit ARGS…` as a real child process, feeding `input` to stdin (or, with `stdin:
 * 'ignore'`, giving it /dev/null as a spawner does); resolves when it exits.
 */
export function runCli(
  args: string[],
  options: {
    input?: string | Buffer;
    stdin?: 'pipe' | 'ignore';
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs?: number;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, SOCKIT_TOKEN: '', ...options.env },
      cwd: options.cwd,
      stdio: [options.stdin ?? 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => err.push(chunk));
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
    if (!child.stdin) return;
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

/**
 * Declarations for a test service's own request types (a service of your own declares its
 * frames): each request with its follow-ups and replies, fields unchecked, bodies up to the
 * connection's limit; the first reply listed is the final one.
 */
export function testFrames(
  service: string,
  requests: Record<string, { followUps?: string[]; replies: string[] }>,
): FrameDeclarations {
  const frames: Record<string, FrameSpec> = {};
  const base = { service, id: 'required', body: 'max', fields: {}, doc: 'a test frame' } as const;
  for (const [type, { followUps = [], replies }] of Object.entries(requests)) {
    frames[type] = {
      ...base,
      role: 'request',
      from: 'client',
      phases: ['anonymous', 'authenticated'],
      followUps,
      replies,
      final: replies.slice(0, 1),
    };
    for (const followUp of followUps) {
      frames[followUp] = {
        ...base,
        role: 'follow-up',
        from: 'client',
        phases: ['anonymous', 'authenticated'],
      };
    }
    for (const reply of replies)
      if (reply !== type) frames[reply] = { ...base, role: 'reply', from: 'server' };
  }
  return frames;
}
