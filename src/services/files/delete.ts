import { lstat, rmdir, unlink } from 'node:fs/promises';
import { FILES_FRAMES } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { type FilesContext, requireAuthenticated } from './context.js';
import { fsFailure } from './fs-errors.js';
import { parseRemotePath } from './path.js';

/**
 * `delete`: removes a file, an empty directory, or a symlink that stays inside the root (the
 * link, never its target). A directory with contents is CONFLICT: clients remove trees entry
 * by entry (`sockit rm -r`), each step through the jail.
 */
export async function handleDelete(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path);
  const path = names.join('/');
  const name = names.at(-1)!;
  const dir = await context.jail.openDir(names.slice(0, -1));
  try {
    const target = dir.at(name);
    const stats = await lstat(target).catch((error: unknown) => {
      throw fsFailure(error, path);
    });
    // A link leading out is refused like every other way out, even though only the link would go.
    if (stats.isSymbolicLink()) await context.jail.followInside(target, path);
    await (stats.isDirectory() ? rmdir(target) : unlink(target)).catch((error: unknown) => {
      throw fsFailure(error, path);
    });
    await dir.handle.sync().catch(() => {});
    request.reply({ type: FILES_FRAMES.deleted, path });
  } finally {
    await dir.close();
  }
}
