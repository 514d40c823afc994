import { link, lstat, rename, unlink } from 'node:fs/promises';

/** `link()` errors that mean the file system has no hard links (not that the name is taken). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV']);

/**
 * Moves a finished temporary file onto `target`. With `overwrite` it is a rename. Without, it
 * is a hard link, which fails instead of replacing, then the temp's name is removed; on a file
 * system without hard links it checks and renames (a narrow race remains there). Resolves
 * false, leaving the temp in place, when `target` already exists.
 */
export async function publishFile(tempPath: string, target: string, overwrite: boolean): Promise<boolean> {
  if (overwrite) {
    await rename(tempPath, target);
    return true;
  }
  try {
    await link(tempPath, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === undefined || !NO_HARD_LINKS.has(code)) throw error;
    const exists = await lstat(target).then(
      () => true,
      () => false,
    );
    if (exists) return false;
    await rename(tempPath, target);
    return true;
  }
  await unlink(tempPath);
  return true;
}
