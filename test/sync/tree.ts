/** Helpers of the sync tests: a tree's full state as one comparable value. */
import assert from 'node:assert/strict';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File, treeOf } from '../files/fixtures.js';

/**
 * Path → what is there: a file's SHA-256, mode and mtime (whole ms), a directory's mode, a
 * link's target. Two trees that sync made equal have equal maps; a run that changed nothing
 * leaves the map as it was. Reserved `.sockit-` temporaries are left out.
 */
export async function treeState(
  dir: string,
  options: { mtimes?: boolean } = {},
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of await treeOf(dir)) {
    if (path.split('/').some((name) => name.startsWith('.sockit-'))) continue;
    const stats = await lstat(join(dir, path));
    const mode = (stats.mode & 0o777).toString(8);
    if (stats.isSymbolicLink()) out[path] = `link ${await readlink(join(dir, path))}`;
    else if (stats.isDirectory()) out[path] = `dir ${mode}`;
    else {
      const time = options.mtimes === false ? '' : ` ${Math.round(stats.mtimeMs)}`;
      out[path] = `file ${mode}${time} ${await sha256File(join(dir, path))}`;
    }
  }
  return out;
}

/**
 * Asserts that `dest` holds what `src` holds (contents, modes, links, directories) with mtimes
 * within 2 ms: the server sets whole milliseconds and utimes rounds them through a float.
 */
export async function assertSameTree(dest: string, src: string): Promise<void> {
  const [there, here] = await Promise.all([
    treeState(dest, { mtimes: false }),
    treeState(src, { mtimes: false }),
  ]);
  assert.deepEqual(there, here);
  for (const path of Object.keys(here)) {
    if (!here[path]!.startsWith('file')) continue;
    const [a, b] = await Promise.all([lstat(join(dest, path)), lstat(join(src, path))]);
    assert.ok(Math.abs(a.mtimeMs - b.mtimeMs) < 2, `${path}: mtime kept`);
  }
}
