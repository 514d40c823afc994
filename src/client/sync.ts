/**
 * `sync` (issue 13): make one directory hold what another holds, either way between this machine
 * and a files server. One recursive `list` of the remote side and one walk of the local side
 * (lstat only) give the plan (`sync-plan.ts`); then only the differences travel, all over the
 * one connection with many requests in flight (no round trip per file). Same size and mtime
 * means unchanged, as rsync's quick check, so an unchanged tree is never read; `checksum`
 * compares contents by hash instead, each side hashing its own copy. Every file is verified
 * and published atomically with its mode and mtime, exactly as `put` and `get` do.
 */
import { mkdir } from 'node:fs/promises';
import { SockitError } from '../errors.js';
import {
  BATCH_BODY_BYTES,
  BATCH_MAX_FILE_BYTES,
  BATCH_MAX_FILES,
  BATCH_NAME_BYTES,
} from '../protocol/files.js';
import type { Client } from './client.js';
import { remoteJoin } from './files-tree.js';
import { type FilterRule, filterRules } from './sync-glob.js';
import {
  type DirectoryTime,
  directoryTimes,
  planSync,
  type RefusedLink,
  type SyncChange,
} from './sync-plan.js';
import { localSide, remoteSide, type SyncSide } from './sync-sides.js';
import { localTree, remoteTree, type SyncTree } from './sync-tree.js';

export type { FilterRule } from './sync-glob.js';
export type { RefusedLink, SyncChange } from './sync-plan.js';

/** Options of `syncToRemote` and `syncFromRemote`. */
export interface SyncOptions {
  /** Remove destination files, links and directories the source does not have. */
  delete?: boolean;
  /** Work out every change and make none. */
  dryRun?: boolean;
  /**
   * Include and exclude globs in order; the first that matches a path decides (rsync's rule).
   * Excluded paths are left alone on both sides (not copied, not deleted); an excluded
   * directory is not walked.
   */
  filter?: readonly FilterRule[];
  /** Shorthand for exclude rules after those of `filter`. */
  exclude?: readonly string[];
  /** Compare same-size files by SHA-256 (each side hashes its own copy) instead of by mtime. */
  checksum?: boolean;
  /** Requests in flight at once on the connection. Default 16. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Told of every change once it is made (with `dryRun`: once it is planned). */
  onChange?(change: SyncChange): void;
  /** Files and bytes copied so far, of the totals the plan holds. */
  onProgress?(progress: SyncProgress): void;
}

/** Where a sync stands. */
export interface SyncProgress {
  files: number;
  bytes: number;
  totalFiles: number;
  totalBytes: number;
}

/** What a sync did. */
export interface SyncSummary {
  changes: SyncChange[];
  /** Files copied. */
  sent: number;
  /** Entries already as the source has them. */
  skipped: number;
  deleted: number;
  /** Directories created or given the source's mode. */
  directories: number;
  /** Symlinks created or replaced. */
  links: number;
  /** File bytes copied. */
  bytes: number;
  /** Links not copied because their target leads outside the root (nothing was written for them). */
  refused: RefusedLink[];
  /** Source entries that cannot be synced: sockets, FIFOs, devices, reserved `.sockit-` names. */
  unsupported: string[];
  elapsedMs: number;
}

/** Makes `remoteRoot` on the server hold what `localRoot` holds. */
export function syncToRemote(
  client: Client,
  localRoot: string,
  remoteRoot: string,
  options: SyncOptions = {},
): Promise<SyncSummary> {
  remoteRoot = remoteJoin(remoteRoot);
  const filter = pathFilter(options);
  return runSync(options, {
    source: () => localTree(localRoot, filter, false),
    dest: () => remoteTree(client, remoteRoot, filter, options.signal),
    from: localSide(client, localRoot, remoteRoot, options.signal),
    to: remoteSide(client, localRoot, remoteRoot, options.signal),
    prepare: async () => {},
  });
}

/** Makes the local directory `localRoot` hold what `remoteRoot` on the server holds. */
export function syncFromRemote(
  client: Client,
  remoteRoot: string,
  localRoot: string,
  options: SyncOptions = {},
): Promise<SyncSummary> {
  remoteRoot = remoteJoin(remoteRoot);
  const filter = pathFilter(options);
  return runSync(options, {
    source: async () => {
      const tree = await remoteTree(client, remoteRoot, filter, options.signal);
      if (tree.entries.size === 0 && remoteRoot !== '') await client.stat(remoteRoot, signalOption(options));
      return tree;
    },
    dest: () => localTree(localRoot, filter, true),
    from: remoteSide(client, localRoot, remoteRoot, options.signal),
    to: localSide(client, localRoot, remoteRoot, options.signal),
    prepare: async () => {
      await mkdir(localRoot, { recursive: true });
    },
  });
}

interface Direction {
  source(): Promise<SyncTree>;
  dest(): Promise<SyncTree>;
  from: SyncSide;
  to: SyncSide;
  /** Makes the destination root exist (a real run only). */
  prepare(): Promise<void>;
}

async function runSync(options: SyncOptions, direction: Direction): Promise<SyncSummary> {
  const started = performance.now();
  const [source, dest] = await Promise.all([direction.source(), direction.dest()]);
  const plan = planSync(source, dest, options);
  const width = Math.max(1, options.concurrency ?? 16);
  // --checksum: same-size files are hashed on both sides; only those that differ are sent.
  const differing: SyncChange[] = [];
  await inPool(plan.compare, width, async (entry) => {
    const [mine, theirs] = await Promise.all([
      direction.from.hash(entry.path),
      direction.to.hash(entry.path),
    ]);
    if (mine !== theirs) differing.push({ action: 'send', path: entry.path, size: entry.size });
    else plan.skipped++;
  });
  const changes = [...plan.changes];
  if (differing.length > 0) {
    const firstDelete = changes.findIndex((change) => change.action === 'delete');
    changes.splice(firstDelete < 0 ? changes.length : firstDelete, 0, ...differing.sort(byPath));
  }
  const summary: SyncSummary = {
    changes,
    sent: 0,
    skipped: plan.skipped,
    deleted: 0,
    directories: 0,
    links: 0,
    bytes: 0,
    refused: plan.refused,
    unsupported: source.unsupported,
    elapsedMs: 0,
  };
  if (options.dryRun) {
    for (const change of changes) options.onChange?.(change);
  } else {
    await direction.prepare();
    await apply(direction.to, changes, dest, summary, options, width);
    await setDirectoryTimes(direction.to, directoryTimes(source, dest, changes), width);
  }
  summary.elapsedMs = performance.now() - started;
  return summary;
}

/** Makes the changes in order: directories, then files and links (pooled), then deletes. */
async function apply(
  to: SyncSide,
  changes: readonly SyncChange[],
  dest: SyncTree,
  summary: SyncSummary,
  options: SyncOptions,
  width: number,
): Promise<void> {
  const copies = changes.filter((change) => change.action === 'send');
  const progress: SyncProgress = {
    files: 0,
    bytes: 0,
    totalFiles: copies.length,
    totalBytes: copies.reduce((sum, change) => sum + change.size, 0),
  };
  const done = (change: SyncChange): void => {
    options.onChange?.(change);
    if (change.action !== 'send') return;
    summary.sent++;
    summary.bytes += change.size;
    progress.files++;
    progress.bytes += change.size;
    options.onProgress?.({ ...progress });
  };
  const make = async (change: SyncChange): Promise<void> => {
    if (change.replaces) await to.remove(change.path);
    if (change.action === 'mkdir') {
      await to.mkdir(change.path, change.mode ?? 0o755);
      summary.directories++;
    } else if (change.action === 'link') {
      await to.link(change.path, change.target!);
      summary.links++;
    } else if (change.action === 'send') {
      await to.receive(change.path);
    }
    done(change);
  };
  const byAction = (action: SyncChange['action']): SyncChange[] => changes.filter((c) => c.action === action);
  // Parents are created by their children's requests too, so directories need no ordering,
  // except that a file or link in the way of one goes first.
  const mkdirs = byAction('mkdir');
  await inPool(
    mkdirs.filter((change) => change.replaces),
    1,
    make,
  );
  await inPool(
    mkdirs.filter((change) => !change.replaces),
    width,
    make,
  );
  options.onProgress?.({ ...progress });
  const { batches, single } = batchesOf(copies);
  let batching = to.receiveBatch !== undefined;
  const sendBatch = async (batch: Batch): Promise<void> => {
    if (batching) {
      try {
        await to.receiveBatch!(
          batch.dir,
          batch.changes.map((change) => change.path.slice(batch.dir.length ? batch.dir.length + 1 : 0)),
        );
        for (const change of batch.changes) done(change);
        return;
      } catch (error) {
        // An older server without put-batch: every file goes as its own put from now on.
        if (!(error instanceof SockitError && error.code === 'UNSUPPORTED')) throw error;
        batching = false;
      }
    }
    for (const change of batch.changes) await make(change);
  };
  await Promise.all([
    inPool(batches, Math.max(1, Math.ceil(width / 4)), sendBatch),
    inPool([...single, ...byAction('link')], width, make),
  ]);
  // Deletes: files and links all in flight, then directories one by one, deepest first.
  const deletes = byAction('delete');
  const removeOne = async (change: SyncChange): Promise<void> => {
    try {
      await to.remove(change.path);
    } catch (error) {
      // A link the server will not touch because it leads out: reported, not fatal.
      if (!(error instanceof SockitError && error.code === 'FORBIDDEN')) throw error;
      summary.refused.push({ path: change.path, target: dest.entries.get(change.path)?.target ?? '' });
      return;
    }
    summary.deleted++;
    done(change);
  };
  await inPool(
    deletes.filter((change) => dest.entries.get(change.path)?.kind !== 'dir'),
    width,
    removeOne,
  );
  for (const change of deletes) if (dest.entries.get(change.path)?.kind === 'dir') await removeOne(change);
}

/**
 * Directory times last, once every entry is in place. A server from before `mkdir` took
 * `mtimeMs` answers BAD_REQUEST: its directories keep the time of their last change.
 */
async function setDirectoryTimes(
  to: SyncSide,
  times: readonly DirectoryTime[],
  width: number,
): Promise<void> {
  let supported = true;
  await inPool(times, width, async ({ path, mode, mtimeMs }) => {
    if (!supported) return;
    try {
      await to.setDirectoryTime(path, mode, mtimeMs);
    } catch (error) {
      if (!(error instanceof SockitError && error.code === 'BAD_REQUEST')) throw error;
      supported = false;
    }
  });
}

/** Small files of one directory that travel in one request. */
interface Batch {
  dir: string;
  changes: SyncChange[];
}

/** Groups the small files by directory into batches; larger files stay single. */
function batchesOf(copies: readonly SyncChange[]): { batches: Batch[]; single: SyncChange[] } {
  const batches: Batch[] = [];
  const single: SyncChange[] = [];
  const open = new Map<string, Batch & { bytes: number; nameBytes: number }>();
  for (const change of copies) {
    if (change.size > BATCH_MAX_FILE_BYTES) {
      single.push(change);
      continue;
    }
    const dir = change.path.includes('/') ? change.path.slice(0, change.path.lastIndexOf('/')) : '';
    let batch = open.get(dir);
    if (
      !batch ||
      batch.changes.length >= BATCH_MAX_FILES ||
      batch.bytes >= BATCH_BODY_BYTES ||
      batch.nameBytes >= BATCH_NAME_BYTES
    ) {
      batch = { dir, changes: [], bytes: 0, nameBytes: 0 };
      open.set(dir, batch);
      batches.push(batch);
    }
    batch.changes.push(change);
    batch.bytes += change.size;
    batch.nameBytes += Buffer.byteLength(change.path) - dir.length;
  }
  return { batches, single };
}

/** Runs `work` over `items` with at most `width` running at once; the first failure rejects. */
async function inPool<T>(
  items: readonly T[],
  width: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

function pathFilter(options: SyncOptions): (path: string, isDir: boolean) => boolean {
  return filterRules([
    ...(options.filter ?? []),
    ...(options.exclude ?? []).map((pattern) => ({ action: 'exclude' as const, pattern })),
  ]);
}

function byPath(a: SyncChange, b: SyncChange): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

function signalOption(options: SyncOptions): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}
