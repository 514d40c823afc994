import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { SockitError } from '../../errors.js';
import { FILES_FRAMES, type FileEntry, RESERVED_PREFIX } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { hashRange } from '../../storage/file-reader.js';
import { type FilesContext, requireAuthenticated, toEntry } from './context.js';
import type { Jail } from './jail.js';
import { joinRemotePath, parseRemotePath } from './path.js';

/** Entries are sent in batches whose JSON stays well under the 64 KiB header ceiling. */
const BATCH_JSON_BYTES = 48 * 1024;

/**
 * `list`: the entries of a directory (or of a whole tree with `recursive`), sorted by name,
 * reserved temporary files, symlinks that lead out, and special files left out. Symlinked
 * directories are listed but not descended into (no loops). A listing too large for one
 * header travels in `list-part` frames before the final `list-result` when the client says
 * it understands them (`stream: true`, a sockit extension); otherwise it is TOO_LARGE.
 * Listing a file gives that one entry.
 */
export async function handleList(request: ServerRequest, context: FilesContext): Promise<void> {
  requireAuthenticated(request);
  const names = parseRemotePath(request.header.path ?? '', { allowRoot: true });
  const recursive = request.header.recursive === true;
  const streamed = request.header.stream === true;
  const single = names.length > 0 ? await statEntry(context.jail, names) : undefined;
  if (single?.kind === 'file') {
    request.reply({ type: FILES_FRAMES.listResult, entries: [single] });
    return;
  }
  let batch: FileEntry[] = [];
  let batchBytes = 0;
  for await (const entry of walk(context.jail, names, recursive)) {
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
      batch = [];
      batchBytes = 0;
    }
    batch.push(entry);
    batchBytes += bytes;
  }
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

/** Depth-first, sorted by name; each directory is opened through the jail before it is read. */
async function* walk(jail: Jail, names: readonly string[], recursive: boolean): AsyncGenerator<FileEntry> {
  const dir = await jail.openDir(names);
  const found: { entry: FileEntry; name: string; descend: boolean }[] = [];
  try {
    const children = await readdir(dir.at('.'), { withFileTypes: true });
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) {
      if (child.name.startsWith(RESERVED_PREFIX)) continue;
      let stats: Awaited<ReturnType<Jail['entryStats']>>;
      try {
        stats = await jail.entryStats(dir, child.name);
      } catch {
        continue; // a link that leads out, or an entry that vanished: not part of the listing
      }
      if (stats === undefined || (!stats.isFile() && !stats.isDirectory())) continue;
      found.push({
        entry: toEntry(dir.relative(child.name), stats),
        name: child.name,
        descend: recursive && stats.isDirectory() && !child.isSymbolicLink(),
      });
    }
  } finally {
    await dir.close();
  }
  for (const { entry, name, descend } of found) {
    yield entry;
    if (descend) yield* walk(jail, [...names, name], recursive);
  }
}
