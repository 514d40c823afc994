/**
 * The bare-spawn baseline of the exec suite, in a process of its own: fork cost grows with the
 * parent's memory, so spawning from the benchmark runner (whose heap holds earlier suites'
 * results) would understate Node's spawn rate next to a fresh `sockit serve`.
 *
 * Protocol on stdin/stdout, one line each: `default N`, `detached N` or `native N` runs N `true`s
 * one after another and answers `done`. `native` is sockit's native spawner alone.
 */
import type { SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { spawnTrue } from './spawn-true.js';

const MODES: Record<string, SpawnOptions | 'native'> = {
  default: {},
  detached: { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  native: 'native',
};

for await (const line of createInterface({ input: process.stdin })) {
  const [mode, count] = line.trim().split(' ');
  const options = MODES[mode ?? ''];
  if (!options) throw new Error(`unknown mode "${mode}"`);
  for (let i = 0; i < Number(count); i++) await spawnTrue(options);
  process.stdout.write('done\n');
}
