/**
 * `mkdir` and `symlink`: the two entries `sync` creates besides files. Both go through the jail
 * like every other request: the directory is made one verified level at a time, and a link is
 * created only when its target text lands inside the root from the link's real location
 * (`linkTargetInside`); the jail still re-checks every link when it is used.
 */
import { rename, symlink, unlink } from 'node:fs/promises';
import { SockitError } from '../../errors.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import { FILES_FRAMES, linkTargetInside, partialLinkName } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { type FilesContext, requireAuthenticated } from './context.js';
import { fsFailure } from './fs-errors.js';
import { parseRemotePath } from './path.js';

/**
 * `mkdir`: makes the directory and any missing parents, then, with `mode`, sets its permission
 * bits (owner rwx always kept, so the server can still fill and remove it), and with `mtimeMs`
 * its modification time (sync sends that last, once the directory's entries are in place). An
 * existing directory is fine: `mkdir` is idempotent, as `mkdir -p` is.
 */
export async function handleMkdir(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const { path, mode, mtimeMs } = request.header as HeaderOfType<'mkdir'>;
  const names = parseRemotePath(path);
  const dir = await context.jail.openDir(names, { create: true });
  try {
    if (mode !== undefined) await dir.handle.chmod((mode & 0o777) | 0o700);
    if (mtimeMs !== undefined) await dir.handle.utimes(mtimeMs / 1000, mtimeMs / 1000);
    request.reply({ type: FILES_FRAMES.made, path: names.join('/') });
  } finally {
    await dir.close();
  }
}

/**
 * `symlink`: `path` becomes a link to `target`, replacing a file or link of that name atomically
 * (the link is made under a reserved name, then renamed). A target that is absolute or leads
 * out of the root is FORBIDDEN and nothing is created.
 */
export async function handleSymlink(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path);
  const path = names.join('/');
  const { target } = request.header as HeaderOfType<'symlink'>;
  const dir = await context.jail.openDir(names.slice(0, -1), { create: true });
  try {
    const real = await context.jail.locationOf(dir.handle.fd, dir.at('.'));
    const inside = real === undefined ? undefined : context.jail.namesBelowRoot(real);
    if (inside === undefined || !linkTargetInside(inside, target)) {
      throw new SockitError(
        'FORBIDDEN',
        `${JSON.stringify(path)} -> ${JSON.stringify(target)} is refused: the link would lead outside the root`,
      );
    }
    const name = names.at(-1)!;
    const temp = dir.at(partialLinkName(name));
    await unlink(temp).catch(() => {});
    try {
      await symlink(target, temp);
      await dir.assertStillInside();
      await rename(temp, dir.at(name));
    } catch (error) {
      await unlink(temp).catch(() => {});
      if ((error as NodeJS.ErrnoException).code === 'EISDIR') {
        throw new SockitError('CONFLICT', `${JSON.stringify(path)} is a directory`);
      }
      throw fsFailure(error, path);
    }
    request.reply({ type: FILES_FRAMES.made, path });
  } finally {
    await dir.close();
  }
}
