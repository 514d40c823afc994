/**
 * The bare-spawn baseline of the exec suite, in a process of its own: fork cost grows with the
 * parent's memory, so spawning from the benchmark runner (whose heap holds earlier suites'
 * results) would understate Node's spawn rate next to a fresh `sockit serve`.
 *
 * Protocol on stdin/stdout, one line each: `default N`, `detached N` or `native N` runs N `true`s
 * one after another and answers `done`. `native` is sockit's native spawner alone.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { startProcess } from '../../src/services/exec/spawner.js';

const MODES: Record<string, SpawnOptions | 'native'> = {
  default: {},
  detached: { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  native: 'native',
};

const NATIVE_PLAN = {
  argv: ['true'],
  shell: undefined,
  file: 'true',
  args: [],
  cwd: process.cwd(),
  env: { ...process.env }, // a plain object: reading process.env asks the C library each time
  envNames: [],
  timeoutMs: 0,
  stdin: false,
};

function spawnTrue(options: SpawnOptions | 'native'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = options === 'native' ? startProcess(NATIVE_PLAN, 'native') : spawn('true', [], options);
    child.stdout?.resume();
    child.stderr?.resume();
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))));
  });
}

for await (const line of createInterface({ input: process.stdin })) {
  const [mode, count] = line.trim().split(' ');
  const options = MODES[mode ?? ''];
  if (!options) throw new Error(`unknown mode "${mode}"`);
  for (let i = 0; i < Number(count); i++) await spawnTrue(options);
  process.stdout.write('done\n');
}
