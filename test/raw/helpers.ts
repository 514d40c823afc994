/** Helpers for netcat-mode tests: CLI children with live stdio, real peers, plain sockets. */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { CLI, tempDir } from '../helpers.js';

/** A spawned child with its output collected and its exit awaited. */
export interface Running {
  child: ChildProcess;
  stdout(): Buffer;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGTERM (if still running) and waits for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface LaunchOptions {
  /** 'pipe' (default: write to child.stdin), 'ignore' (/dev/null) or an open file descriptor. */
  stdin?: 'pipe' | 'ignore' | number;
  /** 'pipe' (default: collected) or an open file descriptor. */
  stdout?: 'pipe' | number;
  env?: NodeJS.ProcessEnv;
  /** Descriptors the child gets as fd 3, 4, … (an inherited listening socket). */
  inherit?: number[];
}

const live = new Set<ChildProcess>();

/** Kills every child a test file started that is still running: use in `after()`, so a failed test leaves nothing behind. */
export async function killAll(): Promise<void> {
  const waiting = [...live].map(
    (child) =>
      new Promise<void>((resolve) => {
        child.once('close', () => resolve());
        child.kill('SIGKILL');
      }),
  );
  await Promise.all(waiting);
}

/** Spawns any program with collected output. `stdin` may be a file descriptor or 'pipe'/'ignore'. */
export function launch(file: string, args: string[], options: LaunchOptions = {}): Running {
  const child = spawn(file, args, {
    stdio: [options.stdin ?? 'pipe', options.stdout ?? 'pipe', 'pipe', ...(options.inherit ?? [])],
    env: { ...process.env, SOCKIT_TOKEN: '', ...options.env },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => err.push(chunk));
  child.stdin?.on('error', () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  live.add(child);
  // A hung child must fail its test, not hang the suite.
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  guard.unref();
  exited.then(() => clearTimeout(guard));
  return {
    child,
    stdout: () => Buffer.concat(out),
    stderr: () => Buffer.concat(err).toString('utf8'),
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs the built `sockit` CLI with collected output. */
export function sockit(args: string[], options: LaunchOptions = {}): Running {
  return launch(process.execPath, [CLI, ...args], options);
}

/** Resolves with the first match of `pattern` in the text a stream produces (stderr lines). */
export function waitForText(
  running: Running,
  pattern: RegExp,
  stream: 'stderr' | 'stdout' = 'stderr',
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const source = stream === 'stderr' ? running.child.stderr! : running.child.stdout!;
    const check = (): boolean => {
      const text = stream === 'stderr' ? running.stderr() : running.stdout().toString('utf8');
      const match = pattern.exec(text);
      if (match) {
        source.off('data', onData);
        resolve(match);
        return true;
      }
      return false;
    };
    const onData = (): void => {
      // 'data' listeners run in order: the collector above has already stored this chunk.
      check();
    };
    if (check()) return;
    source.on('data', onData);
    running.exited.then(() => {
      if (!check()) reject(new Error(`exited before ${pattern} appeared; stderr: ${running.stderr()}`));
    });
  });
}

/** Resolves once `pattern` (a plain regex, no nesting) has matched `count` times in the child's stderr (or stdout). */
export function waitForCount(
  running: Running,
  pattern: RegExp,
  count: number,
  stream: 'stderr' | 'stdout' = 'stderr',
): Promise<void> {
  const global = new RegExp(
    pattern.source,
    pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`,
  );
  return new Promise((resolve, reject) => {
    const source = stream === 'stderr' ? running.child.stderr! : running.child.stdout!;
    const text = (): string => (stream === 'stderr' ? running.stderr() : running.stdout().toString('utf8'));
    const check = (): boolean => {
      if ((text().match(global)?.length ?? 0) < count) return false;
      source.off('data', check);
      resolve();
      return true;
    };
    if (check()) return;
    source.on('data', check);
    running.exited.then(() => {
      if (!check()) reject(new Error(`exited before ${count} × ${pattern}; stderr: ${running.stderr()}`));
    });
  });
}

/** A sockit listener and the address it printed (`tcp://127.0.0.1:41234`). */
export interface Listening extends Running {
  address: string;
  host: string;
  port: number;
}

/** Starts `sockit listen ARGS…` and waits for its "listening on ADDR" line. */
export async function startListen(args: string[], options: LaunchOptions = {}): Promise<Listening> {
  const running = sockit(['listen', ...args], options);
  const match = await waitForText(running, /listening on (\S+)/);
  const address = match[1]!.replace(/,$/, '');
  const hostPort = /^(?:[a-z]+:\/\/)?(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  return {
    ...running,
    address,
    host: hostPort?.[1] ?? hostPort?.[2] ?? '',
    port: Number(hostPort?.[3] ?? 0),
  };
}

/** Connects a plain TCP socket and resolves once connected. */
export function dial(
  port: number,
  host = '127.0.0.1',
  options: { allowHalfOpen?: boolean } = {},
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, allowHalfOpen: options.allowHalfOpen ?? false });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Collects everything a socket sends until it ends or closes. */
export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    socket.once('end', finish);
    socket.once('close', finish);
  });
}

/** Resolves when `socket` has delivered at least `bytes` bytes (collected in order). */
export function readBytes(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= bytes) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => {
      if (total < bytes) reject(new Error(`socket closed after ${total} of ${bytes} bytes`));
    });
  });
}

/** A free TCP port on loopback that nobody listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A temp state dir for TLS tests (certificate, known_hosts), with cleanup. */
export { tempDir };
