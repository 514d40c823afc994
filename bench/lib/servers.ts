/**
 * The servers the benchmarks compare, each started as its own child process on 127.0.0.1 port 0:
 * sockit's framed server (the built CLI), sockit's raw echo, Node's plain `net` echo, the
 * seeds' Python ThreadingTCPServer echo, and `redis-server` (answering PING).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeOnExit, type ServerChild, startServerChild } from './children.js';
import { freePort } from './ports.js';

/**
 * The CLI as installed (package.json "bin": bin/sockit.cjs, which runs the command's bundle from
 * build/cli/), as `npm run bench` builds it first.
 */
export const SOCKIT_CLI = fileURLToPath(new URL('../../../bin/sockit.cjs', import.meta.url));
const NET_ECHO = fileURLToPath(new URL('./net-echo-server.js', import.meta.url));
/** Not compiled: resolved from build/bench/lib back to the source tree. */
const PYTHON_ECHO = fileURLToPath(new URL('../../../bench/peers/threading_echo_server.py', import.meta.url));

/** Node's plain `net` echo server: writes back every chunk it reads. */
export function startNetEcho(): Promise<ServerChild> {
  return startServerChild({
    name: 'node net echo',
    command: process.execPath,
    args: [NET_ECHO],
    readyPattern: /^ready (\d+)$/m,
  });
}

let python: { path: string; version: string } | undefined | null = null;

/**
 * The Python interpreter itself (not a pyenv-style shim script), so /proc figures are the
 * server's; undefined when there is no python3. Asked once per run: the runner and each suite
 * want it.
 */
export function findPython(): { path: string; version: string } | undefined {
  if (python === null) python = askPython();
  return python;
}

function askPython(): { path: string; version: string } | undefined {
  try {
    const output = execFileSync(
      process.env.PYTHON ?? 'python3',
      ['-c', 'import sys, platform; print(sys.executable); print(platform.python_version())'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const [path, version] = output.trim().split('\n');
    return path && version ? { path, version } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The seeds' socketserver.ThreadingTCPServer echo: recv(1024), sendall(data.upper()). It logs
 * every message to stderr as the seed does; that goes to /dev/null so the runner never spends
 * CPU reading it.
 */
export function startPythonEcho(python: string): Promise<ServerChild> {
  return startServerChild({
    name: 'python ThreadingTCPServer echo',
    command: python,
    args: [PYTHON_ECHO, '127.0.0.1', '0'],
    readyPattern: /^ready (\d+)$/m,
    stderr: 'ignore',
  });
}

/** A sockit framed server and the token its clients need; `stop()` also removes its state dir. */
export interface SockitServer extends ServerChild {
  readonly token: string;
}

/**
 * `sockit serve tcp://127.0.0.1:0` with the default echo service and limits, its token in a
 * temp state dir passed with `--token-file`. Logs at warn level: per-connection info lines are
 * not what is measured. `nodeArgs` lets a profiling run add `--cpu-prof`.
 */
export async function startSockitServe(
  options: { extraArgs?: string[]; nodeArgs?: string[]; address?: string } = {},
): Promise<SockitServer> {
  const stateDir = mkdtempSync(join(tmpdir(), 'sockit-bench-'));
  removeOnExit(stateDir);
  const token = 'bench-token-not-secret';
  const tokenFile = join(stateDir, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  try {
    const child = await startServerChild({
      name: 'sockit serve',
      command: process.execPath,
      args: [
        ...(options.nodeArgs ?? []),
        SOCKIT_CLI,
        'serve',
        options.address ?? 'tcp://127.0.0.1:0',
        '--token-file',
        tokenFile,
        '--state-dir',
        stateDir,
        '--log-level',
        'warn',
        ...(options.extraArgs ?? []),
      ],
      readyPattern: /tcp:\/\/127\.0\.0\.1:(\d+)/,
      env: { SOCKIT_STATE_DIR: stateDir },
    });
    return {
      ...child,
      token,
      async stop() {
        await child.stop();
        rmSync(stateDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }
}

/** Whether the built CLI has the raw-mode echo (`sockit listen … --echo`). */
export function hasRawListen(): boolean {
  try {
    const help = execFileSync(process.execPath, [SOCKIT_CLI, 'listen', '--help'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    return help.includes('--echo');
  } catch {
    return false;
  }
}

/**
 * `sockit listen tcp://127.0.0.1:0 --echo upper --keep-open --max-conns 1000`: raw bytes, no
 * framing, many clients at once, upper-cased like the Python seed's replies. It prints
 * `listening on ADDR` to stderr.
 */
export function startSockitListen(): Promise<ServerChild> {
  return startServerChild({
    name: 'sockit listen --echo',
    command: process.execPath,
    args: [
      SOCKIT_CLI,
      'listen',
      'tcp://127.0.0.1:0',
      '--echo',
      'upper',
      '--keep-open',
      '--max-conns',
      '1000',
    ],
    readyPattern: /listening on \S*127\.0\.0\.1:(\d+)/,
  });
}

/** `redis-server --version`'s first line, or undefined when it is not installed. */
export function redisVersion(): string | undefined {
  try {
    return execFileSync('redis-server', ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    })
      .trim()
      .split('\n')[0];
  } catch {
    return undefined;
  }
}

/**
 * `redis-server` on a free 127.0.0.1 port with persistence off (`--save '' --appendonly no`), so
 * it does only what the bench asks: answer PING. Redis cannot listen on port 0 and report the
 * port, so one is found free first; its log's `Ready to accept connections` says it listens.
 */
export async function startRedis(): Promise<ServerChild> {
  const port = await freePort();
  return startServerChild({
    name: 'redis-server',
    command: 'redis-server',
    args: ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
    readyPattern: /port=(\d+)[\s\S]*Ready to accept connections/,
  });
}
