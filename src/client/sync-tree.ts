/**
 * The two trees `sync` compares, each as a map of relative path → entry: the local one from a
 * walk (lstat only, no file is opened; a symlink is read as a link, never followed) and the
 * remote one from one recursive `list` with `links: true`. Both leave out the reserved
 * temporary names and what the filter rules exclude (an excluded directory is not walked,
 * and everything below it counts as excluded too).
 */
import { type Dirent, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { SockitError } from '../errors.js';
import { type FileEntry, RESERVED_PREFIX } from '../protocol/files.js';
import type { Client } from './client.js';

/** One entry of a sync tree; paths are `/`-separated and relative to the tree's root. */
export type TreeEntry = FileEntry;

/** A tree: entries by path, and the paths of excluded entries (kept out of `--delete`). */
export interface SyncTree {
  entries: Map<string, TreeEntry>;
  /** Excluded paths that exist: their ancestors are not empty, so `--delete` keeps them. */
  excluded: string[];
  /** Entries that cannot be synced (sockets, FIFOs, devices, reserved names). */
  unsupported: string[];
}

/** Whether a path (a directory when `isDir`) is left out of the sync. */
export type PathFilter = (path: string, isDir: boolean) => boolean;

/** The local tree below `root`; a root that does not exist is empty when `allowMissing`. */
export async function localTree(root: string, filter: PathFilter, allowMissing: boolean): Promise<SyncTree> {
  const tree: SyncTree = { entries: new Map(), excluded: [], unsupported: [] };
  const rootStats = await lstat(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' && allowMissing) return undefined;
    throw new SockitError('NOT_FOUND', `cannot read ${root}: ${error.message}`);
  });
  if (rootStats === undefined) return tree;
  if (!rootStats.isDirectory()) throw new SockitError('USAGE', `${root} is not a directory`);
  walk(root, '', tree, filter);
  return tree;
}

/**
 * Walks with synchronous readdir/lstat/readlink: a walk is nothing but these calls, and one
 * thread-pool round trip each cost ten times the call itself on a tree of small files.
 */
function walk(root: string, relative: string, tree: SyncTree, filter: PathFilter): void {
  let children: Dirent[];
  try {
    children = readdirSync(join(root, relative), { withFileTypes: true });
  } catch (error) {
    throw new SockitError('NOT_FOUND', `cannot read ${join(root, relative)}: ${(error as Error).message}`);
  }
  const subdirectories: string[] = [];
  for (const child of children) {
    const path = relative === '' ? child.name : `${relative}/${child.name}`;
    if (child.name.startsWith(RESERVED_PREFIX)) {
      tree.unsupported.push(path);
      continue;
    }
    if (filter(path, child.isDirectory())) {
      tree.excluded.push(path);
      continue;
    }
    if (!child.isDirectory() && !child.isFile() && !child.isSymbolicLink()) {
      tree.unsupported.push(path);
      continue;
    }
    const full = join(root, path);
    const stats = lstatSync(full, { throwIfNoEntry: false });
    if (stats === undefined) continue; // vanished since the readdir
    const entry = entryOf(path, stats);
    if (entry.kind === 'link') entry.target = readlinkSync(full);
    tree.entries.set(path, entry);
    if (entry.kind === 'dir') subdirectories.push(path);
  }
  for (const path of subdirectories.sort()) walk(root, path, tree, filter);
}

function entryOf(path: string, stats: Stats): TreeEntry {
  const kind = stats.isSymbolicLink() ? 'link' : stats.isDirectory() ? 'dir' : 'file';
  return {
    path,
    kind,
    size: kind === 'file' ? stats.size : 0,
    mtimeMs: stats.mtimeMs,
    mode: stats.mode & 0o7777,
  };
}

/** The remote tree below `root` from one recursive listing; a root that does not exist is empty. */
export async function remoteTree(
  client: Client,
  root: string,
  filter: PathFilter,
  signal?: AbortSignal,
): Promise<SyncTree> {
  const tree: SyncTree = { entries: new Map(), excluded: [], unsupported: [] };
  let listed: FileEntry[];
  try {
    listed = await client.list(root, { recursive: true, links: true, ...(signal ? { signal } : {}) });
  } catch (error) {
    if (error instanceof SockitError && error.code === 'NOT_FOUND') return tree;
    throw error;
  }
  const prefix = root === '' ? '' : `${root}/`;
  if (listed.length === 1 && listed[0]!.path === root && listed[0]!.kind !== 'dir') {
    throw new SockitError('USAGE', `${root} on the server is not a directory`);
  }
  // Sorted by path, so a directory comes before what it holds: an excluded one is known first.
  const excludedDirs = new Set<string>();
  for (const entry of listed) {
    if (!entry.path.startsWith(prefix) || entry.path === root) continue;
    const path = entry.path.slice(prefix.length);
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    if (excludedDirs.has(parent) || filter(path, entry.kind === 'dir')) {
      if (entry.kind === 'dir') excludedDirs.add(path);
      tree.excluded.push(path);
      continue;
    }
    tree.entries.set(path, { ...entry, path });
  }
  return tree;
}
