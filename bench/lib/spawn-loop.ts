/**
 * The bare-spawn baseline of the exec suite, in a process of its own: fork cost grows with the
 * parent's memory, so spawning from the benchmark runner (whose heap holds earlier suites'
 * results) would understate Node's spawn rate next to a fresh `sockit serve`.
 *
 * Protocol on stdin/stdout, one line each: `default N` or `detached N` runs N `true`s one after
 * another and answers `done`.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const MODES: Record<string, SpawnOptions> = {
  default: {},
  detached: { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
};

function spawnTrue(options: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('true', [], options);
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
