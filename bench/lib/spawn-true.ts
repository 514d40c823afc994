/**
 * One `true`, started the way the exec suite's subjects start it: by sockit's native spawner
 * (the plan the exec service would make for `exec ADDR -- true`) or by child_process.spawn.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { startProcess } from '../../src/services/exec/spawner.js';

const TRUE_PLAN = {
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

/** Runs `true` with its output read to the end; resolves once it is reaped, rejects unless it exits 0. */
export function spawnTrue(options: SpawnOptions | 'native'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = options === 'native' ? startProcess(TRUE_PLAN, 'native') : spawn('true', [], options);
    child.stdout?.resume();
    child.stderr?.resume();
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))));
  });
}
