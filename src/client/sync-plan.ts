/**
 * What a sync must change, worked out from the two trees alone (no I/O): rsync's quick check
 * (same size and mtime is unchanged), links compared by target, directories by mode, and with
 * `delete` whatever the destination has and the source lacks. Links whose target would lead
 * out of the root are refused here, before anything is written on either side.
 */
import { SockitError } from '../errors.js';
import { linkTargetInside } from '../protocol/files.js';
import type { SyncTree, TreeEntry } from './sync-tree.js';

/** One change a sync makes (or, with `dryRun`, would make). */
export interface SyncChange {
  /** `mkdir`: create a directory or set its mode; `send`: copy a file; `link`: create a symlink. */
  action: 'mkdir' | 'send' | 'link' | 'delete';
  /** `/`-separated, relative to both roots. */
  path: string;
  /** Bytes to copy (0 for anything but `send`). */
  size: number;
  /** A link's target (`link` only). */
  target?: string;
  /** The source directory's permission bits (`mkdir` only). */
  mode?: number;
  /** The destination holds something else under this name (a file where a directory goes): remove it first. */
  replaces?: TreeEntry['kind'];
}

/** A link left out because its target would lead outside the root. */
export interface RefusedLink {
  path: string;
  target: string;
}

/** The plan: changes in the order to make them, and what was left as it is. */
export interface SyncPlan {
  /** Directories (parents first), then files and links, then deletes (deepest first). */
  changes: SyncChange[];
  /** Files whose size matches but whose contents must be compared (`--checksum`). */
  compare: TreeEntry[];
  skipped: number;
  refused: RefusedLink[];
}

/**
 * The server sets mtime from whole milliseconds and file systems round that through a float:
 * up to one ms lost each way, so anything within 2 ms is the same time.
 */
const MTIME_SLACK_MS = 2;

/** Directory modes as they end up: owner rwx is always kept (both sides must fill and empty them). */
export function directoryMode(mode: number): number {
  return (mode & 0o777) | 0o700;
}

/** Plans `source` → `dest`. With `checksum`, same-size files go to `compare` instead of the mtime test. */
export function planSync(
  source: SyncTree,
  dest: SyncTree,
  options: { delete?: boolean; checksum?: boolean },
): SyncPlan {
  const dirs: SyncChange[] = [];
  const copies: SyncChange[] = [];
  const compare: TreeEntry[] = [];
  const refused: RefusedLink[] = [];
  let skipped = 0;
  const paths = [...source.entries.keys()].sort();
  for (const path of paths) {
    const from = source.entries.get(path)!;
    const there = dest.entries.get(path);
    const replaces = there && there.kind !== from.kind ? there.kind : undefined;
    if (replaces === 'dir') {
      throw new SockitError(
        'CONFLICT',
        `${path} is a directory on the destination but a ${from.kind} in the source: remove it there first`,
      );
    }
    const change = (action: SyncChange['action'], extra: Partial<SyncChange> = {}): SyncChange => ({
      action,
      path,
      size: 0,
      ...(replaces ? { replaces } : {}),
      ...extra,
    });
    if (from.kind === 'dir') {
      if (there?.kind === 'dir' && directoryMode(there.mode) === directoryMode(from.mode)) skipped++;
      else dirs.push(change('mkdir', { mode: from.mode }));
    } else if (from.kind === 'link') {
      const target = from.target ?? '';
      if (!linkTargetInside(path.split('/').slice(0, -1), target)) refused.push({ path, target });
      else if (there?.kind === 'link' && there.target === target) skipped++;
      else copies.push(change('link', { target }));
    } else if (there?.kind === 'file' && there.size === from.size) {
      if (options.checksum) compare.push(from);
      else if (Math.abs(there.mtimeMs - from.mtimeMs) < MTIME_SLACK_MS) skipped++;
      else copies.push(change('send', { size: from.size }));
    } else {
      copies.push(change('send', { size: from.size }));
    }
  }
  const deletes: SyncChange[] = [];
  if (options.delete) {
    const kept = new Set<string>();
    for (const path of [...source.entries.keys(), ...dest.excluded]) {
      for (const ancestor of ancestorsAndSelf(path)) kept.add(ancestor);
    }
    const gone = [...dest.entries.keys()].filter((path) => !kept.has(path));
    // Deepest first (reverse order puts `a/b` before `a`), so a directory is empty when removed.
    for (const path of gone.sort().reverse()) deletes.push({ action: 'delete', path, size: 0 });
  }
  return { changes: [...dirs, ...copies, ...deletes], compare, skipped, refused };
}

/** A directory whose modification time a sync sets once its entries are in place. */
export interface DirectoryTime {
  path: string;
  mode: number;
  mtimeMs: number;
}

/**
 * The source directories whose time the destination must take after `changes`: those it lacks
 * or holds with another mtime, and the parents of every change (creating, replacing or removing
 * an entry moves its directory's mtime). Deepest first, as rsync does it.
 */
export function directoryTimes(
  source: SyncTree,
  dest: SyncTree,
  changes: readonly SyncChange[],
): DirectoryTime[] {
  const touched = new Set<string>();
  for (const change of changes) {
    const parent = change.path.includes('/') ? change.path.slice(0, change.path.lastIndexOf('/')) : '';
    if (parent !== '') touched.add(parent);
  }
  const times: DirectoryTime[] = [];
  for (const [path, from] of source.entries) {
    if (from.kind !== 'dir') continue;
    const there = dest.entries.get(path);
    const differs = there?.kind !== 'dir' || Math.abs(there.mtimeMs - from.mtimeMs) >= MTIME_SLACK_MS;
    if (differs || touched.has(path)) times.push({ path, mode: from.mode, mtimeMs: from.mtimeMs });
  }
  return times.sort((a, b) => (a.path < b.path ? 1 : a.path > b.path ? -1 : 0));
}

function ancestorsAndSelf(path: string): string[] {
  const parts = path.split('/');
  return parts.map((_, at) => parts.slice(0, at + 1).join('/'));
}
