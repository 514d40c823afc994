import { createHash } from 'node:crypto';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { SockitError } from '../../errors.js';
import { byPath, FILES_FRAMES, type FileEntry, RESERVED_PREFIX } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { hashRange } from '../../storage/file-reader.js';
import { type FilesContext, requireAuthenticated, toEntry } from './context.js';
import type { Jail, JailedDir } from './jail.js';
import { joinRemotePath, parseRemotePath } from './path.js';

/** Entries are sent in batches whose JSON stays well under the 64 KiB header ceiling. */
const BATCH_JSON_BYTES = 48 * 1024;

/**
 * `list`: the entries of a directory (or of a whole tree with `recursive`), streamed as the
 * directory is read (a listing that fits in one frame is sorted by name; a streamed one comes
 * in directory order and the client sorts it), reserved temporary files, symlinks that lead
 * out, and special files left out. Symlinked
 * directories are listed but not descended into (no loops). A listing too large for one
 * header travels in `list-part` frames before the final `list-result` when the client says
 * it understands them (`stream: true`, a sockit extension); otherwise it is TOO_LARGE.
 * Listing a file gives that one entry. With `links: true` (a sockit extension, for `sync`)
 * every symlink is reported as itself, `kind: "link"` with its `target` text, and never followed:
 * the client decides what to do with one that leads out, and the jail is not involved.
 */
export async function handleList(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path ?? '', { allowRoot: true });
  const recursive = request.header.recursive === true;
  const streamed = request.header.stream === true;
  const links = request.header.links === true;
  const single = names.length > 0 ? await statEntry(context.jail, names) : undefined;
  if (single?.kind === 'file') {
    request.reply({ type: FILES_FRAMES.listResult, entries: [single] });
    return;
  }
  let batch: FileEntry[] = [];
  let batchBytes = 0;
  let parts = 0;
  for await (const entry of walk(context.jail, names, recursive, links)) {
    request.signal.throwIfAborted();
    const bytes = Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (batchBytes + bytes > BATCH_JSON_BYTES) {
      if (!streamed) {
        throw new SockitError(
          'TOO_LARGE',
          `the listing of ${JSON.stringify(joinRemotePath(names))} does not fit in one frame: list a subdirectory, or use a client that sends "stream": true`,
        );
      }
      await request.write({ type: FILES_FRAMES.listPart, entries: batch });
      parts++;
      batch = [];
      batchBytes = 0;
    }
    batch.push(entry);
    batchBytes += bytes;
  }
  // A listing that fits in one frame is all here: it goes out sorted, as it always did.
  if (parts === 0) batch.sort(byPath);
  request.reply({ type: FILES_FRAMES.listResult, entries: batch });
}

/** `stat`: one entry; with `sha256: true` (a sockit extension) a file's entry carries its hash. */
export async function handleStat(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path ?? '', { allowRoot: true });
  const entry = await statEntry(context.jail, names);
  if (entry.kind === 'file' && request.header.sha256 === true) {
    const { handle, stats } = await context.jail.openFile(names);
    try {
      const hash = createHash('sha256');
      await hashRange(handle, 0, stats.size, hash, request.signal);
      entry.sha256 = hash.digest('hex');
      entry.size = stats.size;
    } finally {
      await handle.close().catch(() => {});
    }
  }
  request.reply({ type: FILES_FRAMES.statResult, entry });
}

async function statEntry(jail: Jail, names: string[]): Promise<FileEntry> {
  const path = joinRemotePath(names);
  if (names.length === 0) {
    const root = await jail.openDir([]);
    try {
      return toEntry('', await root.handle.stat());
    } finally {
      await root.close();
    }
  }
  const dir = await jail.openDir(names.slice(0, -1));
  try {
    const stats = await jail.entryStats(dir, names.at(-1)!);
    if (stats === undefined) {
      throw new SockitError(
        'NOT_FOUND',
        `${JSON.stringify(path)} does not exist (list the directory to see what is there)`,
      );
    }
    if (!stats.isFile() && !stats.isDirectory()) {
      throw new SockitError('FORBIDDEN', `${JSON.stringify(path)} is not a regular file or directory`);
    }
    return toEntry(path, stats);
  } finally {
    await dir.close();
  }
}

/**
 * The entries of a directory as `opendir` gives them (directory order), one at a time: nothing
 * waits for the whole directory to be read and stat'ed, and only one batch of entries is ever
 * held. With `recursive`, a directory's subdirectories are walked after it is closed (only their
 * names wait, so one descriptor is open at a time, however deep the tree).
 */
async function* walk(
  jail: Jail,
  names: readonly string[],
  recursive: boolean,
  links: boolean,
): AsyncGenerator<FileEntry> {
  const dir = await jail.openDir(names);
  const subdirectories: string[] = [];
  try {
    const entries = await opendir(dir.at('.'), { bufferSize: 64 });
    try {
      for await (const child of entries) {
        if (child.name.startsWith(RESERVED_PREFIX)) continue;
        if (links && child.isSymbolicLink()) {
          const entry = await linkEntry(dir, child.name);
          if (entry) yield entry;
          continue;
        }
        let stats: Awaited<ReturnType<Jail['entryStats']>>;
        try {
          stats = await jail.entryStats(dir, child.name);
        } catch {
          continue; // a link that leads out, or an entry that vanished: not part of the listing
        }
        if (stats === undefined || (!stats.isFile() && !stats.isDirectory())) continue;
        if (recursive && stats.isDirectory() && !child.isSymbolicLink()) subdirectories.push(child.name);
        yield toEntry(dir.relative(child.name), stats);
      }
    } finally {
      // A consumer that stops early (an aborted request) ends the loop without closing the Dir.
      await entries.close().catch(() => {});
    }
  } finally {
    await dir.close();
  }
  for (const name of subdirectories) yield* walk(jail, [...names, name], recursive, links);
}

/** A symlink as itself (lstat and readlink through the open directory), or undefined if it vanished. */
async function linkEntry(dir: JailedDir, name: string): Promise<FileEntry | undefined> {
  try {
    const [stats, target] = await Promise.all([lstat(dir.at(name)), readlink(dir.at(name))]);
    return { ...toEntry(dir.relative(name), stats), kind: 'link', size: 0, target };
  } catch {
    return undefined;
  }
}
