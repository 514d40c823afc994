/**
 * One direction of `sync` (issue 13), local directory → remote directory: compare the local
 * tree with one recursive listing of the remote one, then put only what differs, all over the
 * one connection with several puts in flight (no round trip per file). Same size and mtime
 * means unchanged, as rsync's default quick check, so an unchanged tree is never read.
 * Each put is verified and published atomically by the files service, as `put` is.
 * Not yet here: the remote → local direction, `--include`, symlinks (skipped and reported).
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SockitError } from '../errors.js';
import type { FileEntry } from '../protocol/files.js';
import type { Client } from './client.js';
import { remoteJoin } from './files-tree.js';
import { excludedBy } from './sync-glob.js';

/** Options of `syncToRemote`. */
export interface SyncOptions {
  /** Remove remote files and directories the source does not have. */
  delete?: boolean;
  /** Work out every change and make none. */
  dryRun?: boolean;
  /**
   * Globs of paths to leave alone on both sides (not sent, not deleted), e.g. `*.tmp`,
   * `build/**`. An excluded directory is not walked.
   */
  exclude?: readonly string[];
  /** Puts in flight at once on the connection. Default 8. */
  concurrency?: number;
  signal?: AbortSignal;
}

/** One change a sync makes (or, with `dryRun`, would make). */
export interface SyncChange {
  action: 'send' | 'delete';
  /** `/`-separated, relative to both roots. */
  path: string;
  /** Bytes to send (0 for a delete). */
  size: number;
}

/** What a sync did. */
export interface SyncSummary {
  changes: SyncChange[];
  sent: number;
  skipped: number;
  deleted: number;
  bytes: number;
  /** Local entries not synced: symlinks and other non-regular files. */
  unsupported: string[];
  elapsedMs: number;
}

interface LocalFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** Makes `remoteRoot` on the server hold what `localRoot` holds (files, with mode and mtime). */
export async function syncToRemote(
  client: Client,
  localRoot: string,
  remoteRoot: string,
  options: SyncOptions = {},
): Promise<SyncSummary> {
  const started = performance.now();
  const unsupported: string[] = [];
  const excluded = excludedBy(options.exclude ?? []);
  const local = await walk(localRoot, '', unsupported, excluded);
  remoteRoot = remoteJoin(remoteRoot);
  const remote = new Map<string, FileEntry>();
  // Directories holding an excluded remote entry are not empty, so they stay.
  const holdsExcluded: string[] = [];
  for (const entry of await remoteTree(client, remoteRoot, options.signal)) {
    if (ancestorsAndSelf(entry.path).some(excluded)) holdsExcluded.push(entry.path);
    else remote.set(entry.path, entry);
  }
  const changes: SyncChange[] = [];
  let skipped = 0;
  for (const file of local) {
    const there = remote.get(file.path);
    // The server sets mtime from whole milliseconds and the file system rounds that through a
    // float: up to one ms lost each way, so anything within 2 ms is the same time.
    if (there?.kind === 'file' && there.size === file.size && Math.abs(there.mtimeMs - file.mtimeMs) < 2)
      skipped++;
    else changes.push({ action: 'send', path: file.path, size: file.size });
  }
  if (options.delete) {
    const kept = new Set(
      [...local, ...holdsExcluded.map((path) => ({ path }))].flatMap((file) => ancestorsAndSelf(file.path)),
    );
    // Deepest first, so a directory is empty by the time it is removed.
    const gone = [...remote.values()].filter((entry) => !kept.has(entry.path)).reverse();
    for (const entry of gone) changes.push({ action: 'delete', path: entry.path, size: 0 });
  }
  const summary: SyncSummary = { changes, sent: 0, skipped, deleted: 0, bytes: 0, unsupported, elapsedMs: 0 };
  if (!options.dryRun) await apply(client, localRoot, remoteRoot, changes, summary, options);
  summary.elapsedMs = performance.now() - started;
  return summary;
}

async function apply(
  client: Client,
  localRoot: string,
  remoteRoot: string,
  changes: SyncChange[],
  summary: SyncSummary,
  options: SyncOptions,
): Promise<void> {
  const sends = changes.filter((change) => change.action === 'send');
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sends.length) {
      const change = sends[next++]!;
      await client.put(join(localRoot, change.path), remoteJoin(remoteRoot, change.path), {
        overwrite: true,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      summary.sent++;
      summary.bytes += change.size;
    }
  };
  const width = Math.max(1, Math.min(options.concurrency ?? 8, sends.length));
  await Promise.all(Array.from({ length: width }, worker));
  for (const change of changes) {
    if (change.action !== 'delete') continue;
    await client.delete(
      remoteJoin(remoteRoot, change.path),
      options.signal ? { signal: options.signal } : {},
    );
    summary.deleted++;
  }
}

/** The remote tree relative to `root`; a root that does not exist yet is empty. */
async function remoteTree(client: Client, root: string, signal?: AbortSignal): Promise<FileEntry[]> {
  try {
    const prefix = root === '' ? '' : `${root}/`;
    const entries = await client.list(root, { recursive: true, ...(signal ? { signal } : {}) });
    return entries
      .filter((entry) => entry.path.startsWith(prefix) && entry.path !== prefix)
      .map((entry) => ({ ...entry, path: entry.path.slice(prefix.length) }));
  } catch (error) {
    if (error instanceof SockitError && error.code === 'NOT_FOUND') return [];
    throw error;
  }
}

/** Regular files below `dir`, by lstat: a symlink is never followed (listed as unsupported). */
async function walk(
  root: string,
  relative: string,
  unsupported: string[],
  excluded: (path: string) => boolean,
): Promise<LocalFile[]> {
  let children: Dirent[];
  try {
    children = await readdir(join(root, relative), { withFileTypes: true });
  } catch (error) {
    throw new SockitError('NOT_FOUND', `cannot read ${join(root, relative)}: ${(error as Error).message}`);
  }
  const files: LocalFile[] = [];
  for (const child of children) {
    const path = relative === '' ? child.name : `${relative}/${child.name}`;
    if (excluded(path)) continue;
    if (child.isDirectory()) files.push(...(await walk(root, path, unsupported, excluded)));
    else if (child.isFile()) {
      const stats = await lstat(join(root, path));
      files.push({ path, size: stats.size, mtimeMs: stats.mtimeMs });
    } else unsupported.push(path);
  }
  return files;
}

function ancestorsAndSelf(path: string): string[] {
  const parts = path.split('/');
  return parts.map((_, at) => parts.slice(0, at + 1).join('/'));
}
