/**
 * Many files in one command: plan which local file goes to which remote path (and back), then
 * move them one after another over one connection. The naming follows `cp -r` and `scp -r`:
 * into an existing directory (or a path ending in `/`) items keep their names; otherwise the
 * single item is copied to exactly the given name.
 */
import type { Dirent } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { SockitError } from '../errors.js';
import type { Client } from './client.js';
import type { FileEntry, TransferOptions, TransferResult } from './files.js';

/** One file of a plan. */
export interface TransferItem {
  localPath: string;
  remotePath: string;
  size: number;
}

/** What a multi-file transfer reports as it goes. */
export interface TreeCallbacks {
  onFileStart?(item: TransferItem, index: number, count: number): void;
  /** `bytes`: of this file; `overallBytes`: of the whole plan so far. */
  onProgress?(item: TransferItem, bytes: number, overallBytes: number): void;
  onFileDone?(item: TransferItem, result: TransferResult): void;
}

/** Options of a multi-file transfer: those of one transfer, except the per-file progress. */
export type TreeTransferOptions = Omit<TransferOptions, 'onProgress'>;

/** A remote path joined the protocol's way. */
export function remoteJoin(...parts: string[]): string {
  return parts
    .flatMap((part) => part.split('/'))
    .filter((part) => part !== '' && part !== '.')
    .join('/');
}

/** Remote paths that name a directory by their spelling: the root, or a trailing `/`. */
function spelledAsDirectory(remote: string): boolean {
  return remote === '' || remote === '.' || remote.endsWith('/');
}

async function remoteKind(client: Client, remote: string): Promise<FileEntry['kind'] | undefined> {
  try {
    return (await client.stat(remote)).kind;
  } catch (error) {
    if (error instanceof SockitError && error.code === 'NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * Plans `sockit put [-r] LOCAL… ADDR REMOTE`. Several sources, or REMOTE being a directory,
 * put each source inside REMOTE under its own name.
 */
export async function planUpload(
  client: Client,
  locals: readonly string[],
  remote: string,
  options: { recursive?: boolean } = {},
): Promise<TransferItem[]> {
  if (locals.length === 0) throw new SockitError('USAGE', 'name at least one local file to upload');
  const intoDirectory =
    locals.length > 1 || spelledAsDirectory(remote) || (await remoteKind(client, remote)) === 'dir';
  const items: TransferItem[] = [];
  for (const local of locals) {
    const stats = await stat(local).catch((error: NodeJS.ErrnoException) => {
      throw new SockitError(
        'NOT_FOUND',
        `${local}: ${error.code === 'ENOENT' ? 'no such file or directory' : error.message}`,
      );
    });
    const name = basename(local);
    const base = intoDirectory ? remoteJoin(remote, name) : remoteJoin(remote);
    if (stats.isFile()) {
      items.push({ localPath: local, remotePath: base, size: stats.size });
    } else if (stats.isDirectory()) {
      if (!options.recursive) throw new SockitError('USAGE', `${local} is a directory: use -r to copy it`);
      for await (const file of walkLocal(local)) {
        const inner = relative(local, file.path).split(sep).join('/');
        items.push({ localPath: file.path, remotePath: remoteJoin(base, inner), size: file.size });
      }
    } else {
      throw new SockitError('USAGE', `${local} is not a regular file or directory`);
    }
  }
  return items;
}

/**
 * Plans `sockit get [-r] ADDR REMOTE [LOCAL]`. Also returns the directories to create, so
 * empty remote directories arrive too.
 */
export async function planDownload(
  client: Client,
  remote: string,
  local: string,
  options: { recursive?: boolean } = {},
): Promise<{ items: TransferItem[]; directories: string[] }> {
  const entry = await client.stat(remote);
  const localStats = await stat(local).catch(() => undefined);
  const intoDirectory = localStats?.isDirectory() === true || local.endsWith('/') || local.endsWith(sep);
  const name = entry.path.split('/').at(-1) ?? '';
  if (entry.kind === 'file') {
    return {
      items: [
        { remotePath: entry.path, localPath: intoDirectory ? join(local, name) : local, size: entry.size },
      ],
      directories: [],
    };
  }
  if (!options.recursive) throw new SockitError('USAGE', `${remote} is a directory: use -r to copy it`);
  const base = intoDirectory && name !== '' ? join(local, name) : local;
  const prefix = entry.path === '' ? '' : `${entry.path}/`;
  const entries: FileEntry[] = await client.list(entry.path, { recursive: true });
  const items: TransferItem[] = [];
  const directories = [base];
  for (const child of entries) {
    const inner = child.path.slice(prefix.length).split('/');
    const localPath = join(base, ...inner);
    if (child.kind === 'dir') directories.push(localPath);
    else items.push({ remotePath: child.path, localPath, size: child.size });
  }
  return { items, directories };
}

/** Uploads a plan one file after another on one connection. Stops at the first failure. */
export async function runUploads(
  client: Client,
  items: readonly TransferItem[],
  options: TreeTransferOptions = {},
  callbacks: TreeCallbacks = {},
): Promise<TransferResult[]> {
  return runPlan(items, callbacks, (item, onProgress) =>
    client.put(item.localPath, item.remotePath, { ...options, onProgress }),
  );
}

/** Downloads a plan one file after another on one connection, creating local directories. */
export async function runDownloads(
  client: Client,
  plan: { items: readonly TransferItem[]; directories: readonly string[] },
  options: TreeTransferOptions = {},
  callbacks: TreeCallbacks = {},
): Promise<TransferResult[]> {
  for (const directory of plan.directories) await mkdir(directory, { recursive: true });
  return runPlan(plan.items, callbacks, async (item, onProgress) => {
    await mkdir(join(item.localPath, '..'), { recursive: true });
    return client.get(item.remotePath, item.localPath, { ...options, onProgress });
  });
}

async function runPlan(
  items: readonly TransferItem[],
  callbacks: TreeCallbacks,
  transfer: (item: TransferItem, onProgress: TransferOptions['onProgress']) => Promise<TransferResult>,
): Promise<TransferResult[]> {
  const results: TransferResult[] = [];
  let before = 0;
  for (const [index, item] of items.entries()) {
    callbacks.onFileStart?.(item, index, items.length);
    const result = await transfer(item, (progress) => {
      callbacks.onProgress?.(item, progress.bytes, before + progress.bytes);
    });
    callbacks.onProgress?.(item, result.size, before + result.size);
    before += result.size;
    callbacks.onFileDone?.(item, result);
    results.push(result);
  }
  return results;
}

/** Removes a remote tree: files first, then directories deepest first, each through the jail. */
export async function removeTree(client: Client, remote: string): Promise<number> {
  const entry = await client.stat(remote);
  if (entry.kind === 'file') {
    await client.delete(entry.path);
    return 1;
  }
  const entries = await client.list(entry.path, { recursive: true });
  const byDepth = [...entries].sort((a, b) => depth(b.path) - depth(a.path) || (a.kind === 'file' ? -1 : 1));
  for (const child of byDepth) await client.delete(child.path);
  if (entry.path !== '') await client.delete(entry.path);
  return byDepth.length + (entry.path !== '' ? 1 : 0);
}

function depth(path: string): number {
  return path.split('/').length;
}

/** Regular files below `root`, sorted, following file symlinks but not directory ones (no loops). */
async function* walkLocal(root: string): AsyncGenerator<{ path: string; size: number }> {
  let children: Dirent[];
  try {
    children = await readdir(root, { withFileTypes: true });
  } catch (error) {
    throw new SockitError('FORBIDDEN', `cannot read ${root}: ${(error as Error).message}`);
  }
  children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const child of children) {
    const path = join(root, child.name);
    if (child.isDirectory()) {
      yield* walkLocal(path);
      continue;
    }
    if (child.isFile() || child.isSymbolicLink()) {
      const stats = await stat(path).catch(() => undefined);
      if (stats?.isFile()) yield { path, size: stats.size };
    }
  }
}
