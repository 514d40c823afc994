/**
 * The two sides of a sync as the orchestrator (`sync.ts`) sees them: each can hash one of its
 * files (`--checksum`) and, as the destination, make the changes of a plan. The remote side
 * speaks the files service (put, mkdir, symlink, delete, stat with a hash: the server reads
 * and hashes, no contents travel); the local side writes only below its root, checking that
 * each directory it writes into really is there (not reached through a symlink).
 */
import { createHash } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  open,
  realpath,
  rename,
  rmdir,
  symlink,
  unlink,
  utimes,
} from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { SockitError } from '../errors.js';
import { FILES_FRAMES, partialLinkName } from '../protocol/files.js';
import { hashRange } from '../storage/file-reader.js';
import type { Client } from './client.js';
import { getBatch, putBatch } from './files-batch.js';
import { remoteJoin } from './files-tree.js';
import { directoryMode } from './sync-plan.js';

/** One side of a sync. Paths are relative to its root, `/`-separated. */
export interface SyncSide {
  /** SHA-256 hex of a file's contents. */
  hash(path: string): Promise<string>;
  /** Creates a directory (parents too) or sets its mode. */
  mkdir(path: string, mode: number): Promise<void>;
  /** Sets a directory's modification time (after its entries are in place). */
  setDirectoryTime(path: string, mode: number, mtimeMs: number): Promise<void>;
  /** Copies one file from the other side onto this one: verified, atomic, mode and mtime kept. */
  receive(path: string): Promise<void>;
  /**
   * Copies several small files of one directory at once (one request), as `receive` would each.
   * Absent where there is no such request; rejects UNSUPPORTED when the server has none.
   */
  receiveBatch?(dir: string, names: readonly string[]): Promise<void>;
  /** Creates or atomically replaces a symlink. */
  link(path: string, target: string): Promise<void>;
  /** Removes a file, link or empty directory. */
  remove(path: string): Promise<void>;
}

function signalOption(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

/** The server's directory `remoteRoot`; files arrive from `localRoot` by `put`. */
export function remoteSide(
  client: Client,
  localRoot: string,
  remoteRoot: string,
  signal?: AbortSignal,
): SyncSide {
  const at = (path: string): string => remoteJoin(remoteRoot, path);
  return {
    async hash(path) {
      const entry = await client.stat(at(path), { sha256: true, ...signalOption(signal) });
      if (entry.sha256 === undefined)
        throw new SockitError('INTERNAL', `the server sent no hash for ${path}`);
      return entry.sha256;
    },
    async mkdir(path, mode) {
      await client.call({ type: FILES_FRAMES.mkdir, path: at(path), mode }, undefined, signalOption(signal));
    },
    async setDirectoryTime(path, mode, mtimeMs) {
      await client.call(
        { type: FILES_FRAMES.mkdir, path: at(path), mode, mtimeMs },
        undefined,
        signalOption(signal),
      );
    },
    async receive(path) {
      await client.put(join(localRoot, ...path.split('/')), at(path), {
        overwrite: true,
        ...signalOption(signal),
      });
    },
    async receiveBatch(dir, names) {
      const base = join(localRoot, ...dir.split('/').filter(Boolean));
      const items = names.map((name) => ({ name, localPath: join(base, name) }));
      await putBatch(client, at(dir), items, signalOption(signal));
    },
    async link(path, target) {
      await client.call(
        { type: FILES_FRAMES.symlink, path: at(path), target },
        undefined,
        signalOption(signal),
      );
    },
    remove: (path) => client.delete(at(path), signalOption(signal)),
  };
}

/** The local directory `localRoot`; files arrive from the server's `remoteRoot` by `get`. */
export function localSide(
  client: Client,
  localRoot: string,
  remoteRoot: string,
  signal?: AbortSignal,
): SyncSide {
  const at = (path: string): string => join(localRoot, ...path.split('/'));
  let realRoot: Promise<string> | undefined;
  const checked = new Map<string, Promise<void>>();
  /** Refuses to write into a directory that is not really below the root (a symlink swapped in). */
  const inside = (dir: string): Promise<void> => {
    let check = checked.get(dir);
    if (!check) {
      realRoot ??= realpath(localRoot);
      check = Promise.all([realRoot, realpath(dir)]).then(([root, real]) => {
        if (real !== root && !real.startsWith(root + sep)) {
          throw new SockitError('FORBIDDEN', `${dir} leads outside ${localRoot}: nothing written there`);
        }
      });
      checked.set(dir, check);
    }
    return check;
  };
  return {
    async hash(path) {
      const handle = await open(at(path), 'r');
      try {
        const hash = createHash('sha256');
        await hashRange(handle, 0, (await handle.stat()).size, hash, signal);
        return hash.digest('hex');
      } finally {
        await handle.close();
      }
    },
    async mkdir(path, mode) {
      await mkdir(at(path), { recursive: true });
      await inside(at(path));
      await chmod(at(path), directoryMode(mode));
    },
    async setDirectoryTime(path, _mode, mtimeMs) {
      await inside(at(path));
      await utimes(at(path), mtimeMs / 1000, mtimeMs / 1000);
    },
    async receive(path) {
      await inside(dirname(at(path)));
      await client.get(remoteJoin(remoteRoot, path), at(path), { overwrite: true, ...signalOption(signal) });
    },
    async receiveBatch(dir, names) {
      const local = at(dir);
      await inside(local);
      const { skipped } = await getBatch(
        client,
        remoteJoin(remoteRoot, dir),
        names,
        local,
        signalOption(signal),
      );
      for (const name of skipped) await this.receive(dir === '' ? name : `${dir}/${name}`);
    },
    async link(path, target) {
      const dir = dirname(at(path));
      await inside(dir);
      const temp = join(dir, partialLinkName(basename(at(path))));
      await unlink(temp).catch(() => {});
      await symlink(target, temp);
      await rename(temp, at(path)).catch(async (error: unknown) => {
        await unlink(temp).catch(() => {});
        throw error;
      });
    },
    async remove(path) {
      await inside(dirname(at(path)));
      const stats = await lstat(at(path));
      await (stats.isDirectory() ? rmdir(at(path)) : unlink(at(path)));
    },
  };
}
