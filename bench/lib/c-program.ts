/** The benchmarks' small C load programs (bench/lib/*.c), built with the system's compiler. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeOnExit } from './children.js';

/**
 * Compiles `bench/lib/<name>.c` into a temp dir (removed when the run exits) and returns the
 * binary's path; undefined when there is no C compiler or it fails.
 */
export function compileLoadProgram(name: string): string | undefined {
  const source = fileURLToPath(new URL(`../../../bench/lib/${name}.c`, import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), `sockit-bench-${name}-`));
  removeOnExit(dir);
  const binary = join(dir, name);
  try {
    execFileSync('cc', ['-O2', '-pthread', '-o', binary, source], { stdio: 'ignore' });
    return binary;
  } catch {
    return undefined;
  }
}
