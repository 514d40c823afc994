/** Helpers for the exec tests: a server with the exec service, process liveness, stream reading. */
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, connect } from '../../src/client/client.js';
import type { Server } from '../../src/server/server.js';
import { type ExecService, type ExecServiceOptions, execService } from '../../src/services/exec/index.js';
import { startServer, TEST_TOKEN, type TestServeOptions } from '../helpers.js';

/** A server on port 0 running exec (any program unless told) and a connected, authenticated client. */
export async function startExec(
  options: Partial<ExecServiceOptions> = {},
  serveOptions: TestServeOptions = {},
): Promise<{
  address: string;
  client: Client;
  server: Server;
  service: ExecService;
  stateDir: string;
  connect: () => Promise<Client>;
  stop: () => Promise<void>;
}> {
  const service = execService({ allow: 'any', ...options });
  const started = await startServer({ services: [service], ...serveOptions });
  const open = () => connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
  const client = await open();
  return {
    address: started.address,
    client,
    server: started.server,
    service,
    stateDir: started.stateDir,
    connect: open,
    stop: async () => {
      client.destroy();
      await started.stop();
    },
  };
}

/** `node -e SCRIPT` on the server: the same Node as the tests, so scripts behave the same everywhere. */
export function nodeArgv(script: string, ...args: string[]): string[] {
  return [process.execPath, '-e', script, ...args];
}

/** A process state from /proc: `R`, `S`, `Z` (exited, not yet reaped) …, or undefined when gone. */
function procState(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

const HAS_PROC = (() => {
  try {
    readdirSync('/proc/self');
    return true;
  } catch {
    return false;
  }
})();

/**
 * Whether `pid` no longer runs. A zombie counts as dead: it has exited and only waits for its
 * parent to reap it. Killed grandchildren are re-parented to PID 1, which in some containers
 * never reaps; our own children must never be left as zombies (see `zombieChildren`).
 */
export function isDead(pid: number): boolean {
  if (HAS_PROC) {
    const info = procState(pid);
    return info === undefined || info.state === 'Z' || info.state === 'X';
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** Waits (polling /proc, bounded) until `pid` is dead; throws if it still runs after `limitMs`. */
export async function waitUntilDead(pid: number, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!isDead(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still runs after ${limitMs} ms`);
    await sleep(10);
  }
}

/** Zombie children of this (the server's) process: exited but never reaped. Must stay empty. */
export function zombieChildren(): number[] {
  if (!HAS_PROC) return [];
  const zombies: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = procState(Number(entry));
    if (info?.state === 'Z' && info.ppid === process.pid) zombies.push(Number(entry));
  }
  return zombies;
}

/** Resolves with the first line a stream produces (the stream keeps flowing afterwards). */
export function firstLine(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const newline = text.indexOf('\n');
      if (newline >= 0) {
        stream.off('data', onData);
        stream.resume();
        resolve(text.slice(0, newline));
      }
    };
    stream.on('data', onData);
    stream.once('end', () => reject(new Error(`stream ended before a full line: ${JSON.stringify(text)}`)));
  });
}
