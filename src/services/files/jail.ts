/**
 * The second half of the path jail: names from `parseRemotePath` are resolved against the
 * disk without ever leaving the root, even while someone swaps symlinks in.
 *
 * How: every directory on the way is opened (O_DIRECTORY | O_NOFOLLOW) and its real location
 * read back from the open descriptor (`/proc/self/fd/N`) before it is used. The next step goes
 * through that descriptor's path (`/proc/self/fd/N/name`), which the kernel resolves to the
 * directory already opened, not by walking the path text again: the Linux equivalent of
 * `openat()`. A symlink is followed only after `realpath` shows that it lands inside the root.
 * Files are opened with O_NOFOLLOW and checked the same way. Where `/proc/self/fd` does not
 * exist the jail falls back to checked real paths (a narrow check-then-use window remains).
 */
import {
  closeSync,
  constants,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readlink, realpath, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import { invalidOption, SockitError } from '../../errors.js';
import { RESERVED_PREFIX } from '../../protocol/files.js';
import { fsFailure } from './fs-errors.js';
import { joinRemotePath } from './path.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** O_NONBLOCK: opening a FIFO someone left in the root must not hang a thread. */
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** An open directory inside the root. Build paths of its children with `at()`. */
export class JailedDir {
  readonly handle: FileHandle;
  /** Where the directory is, relative to the root (as the client named it). */
  readonly names: readonly string[];
  readonly #jail: Jail;
  readonly #base: string;

  constructor(jail: Jail, handle: FileHandle, names: readonly string[], base: string) {
    this.#jail = jail;
    this.handle = handle;
    this.names = names;
    this.#base = base;
  }

  /** A path for a child of this directory that resolves through the open descriptor. */
  at(name: string): string {
    return `${this.#base}/${name}`;
  }

  /** The client's path of a child, for messages and entries. */
  relative(name: string): string {
    return joinRemotePath([...this.names, name]);
  }

  /** Re-checks, right before publishing, that the directory was not moved out of the root. */
  async assertStillInside(): Promise<void> {
    const real = await this.#jail.locationOf(this.handle.fd, this.#base);
    if (real === undefined || !this.#jail.contains(real)) {
      throw new SockitError(
        'FORBIDDEN',
        `${JSON.stringify(joinRemotePath(this.names))} was moved out of the root during the transfer`,
      );
    }
  }

  /** Identity of the directory, for per-target locks that must not depend on path text. */
  async key(): Promise<string> {
    const stats = await this.handle.stat();
    return `${stats.dev}:${stats.ino}`;
  }

  close(): Promise<void> {
    return this.handle.close().catch(() => {});
  }
}

/** A regular file opened for reading inside the root. */
export interface JailedFile {
  handle: FileHandle;
  stats: Stats;
}

/** The root directory of the files service and the only way to reach what lies below it. */
export class Jail {
  /** The root's real path (symlinks resolved). */
  readonly root: string;
  readonly #procFd: boolean;

  private constructor(root: string, procFd: boolean) {
    this.root = root;
    this.#procFd = procFd;
  }

  /**
   * Resolves and checks the root once, at startup (synchronously, so a bad `--files DIR` stops
   * `sockit serve` with a clear message before it listens).
   */
  static open(root: string): Jail {
    let real: string;
    try {
      real = realpathSync(root);
    } catch (error) {
      throw invalidOption(`files root ${root} cannot be used: ${(error as Error).message}`);
    }
    if (!statSync(real).isDirectory()) throw invalidOption(`files root ${root} is not a directory`);
    const fd = openSync(real, DIR_FLAGS);
    try {
      let seen: string | undefined;
      try {
        seen = readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        seen = undefined;
      }
      return new Jail(real, seen === real);
    } finally {
      closeSync(fd);
    }
  }

  /** Whether a real (symlink-free) path is the root or below it. */
  contains(real: string): boolean {
    if (this.root === sep) return real.startsWith(sep);
    return real === this.root || real.startsWith(this.root + sep);
  }

  /** The names of a real path below the root (`[]` for the root), or undefined when it is outside. */
  namesBelowRoot(real: string): string[] | undefined {
    if (!this.contains(real)) return undefined;
    return real
      .slice(this.root.length)
      .split(sep)
      .filter((name) => name !== '');
  }

  /** Internal: where an open descriptor really is, or the fallback path's real path. */
  async locationOf(fd: number, fallback: string): Promise<string | undefined> {
    try {
      return this.#procFd ? await readlink(`/proc/self/fd/${fd}`) : await realpath(fallback);
    } catch {
      return undefined;
    }
  }

  /**
   * Opens the directory `names` (the root for `[]`). With `create`, missing directories are
   * made (mode 0755) one by one, each inside an already verified one.
   */
  async openDir(names: readonly string[], options: { create?: boolean } = {}): Promise<JailedDir> {
    let current = await this.#openDirVerified(this.root, []);
    try {
      for (let i = 0; i < names.length; i++) {
        const next = await this.#child(current, names[i]!, names.slice(0, i + 1), options.create ?? false);
        await current.close();
        current = next;
      }
      return current;
    } catch (error) {
      await current.close();
      throw error;
    }
  }

  /** Opens `name` in `dir` for reading: a regular file or a directory, never a device or FIFO. */
  async openEntry(dir: JailedDir, name: string): Promise<JailedFile> {
    const relative = dir.relative(name);
    let handle: FileHandle;
    try {
      handle = await open(dir.at(name), READ_FLAGS);
    } catch (error) {
      if (!(await isLinkError(error, dir.at(name)))) throw fsFailure(error, relative);
      const target = await this.followInside(dir.at(name), relative);
      handle = await open(target, READ_FLAGS).catch((again: unknown) => {
        throw fsFailure(again, relative);
      });
    }
    try {
      const real = await this.locationOf(handle.fd, dir.at(name));
      if (real === undefined || !this.contains(real)) {
        throw new SockitError('FORBIDDEN', `${JSON.stringify(relative)} leads outside the root`);
      }
      const stats = await handle.stat();
      if (!stats.isFile() && !stats.isDirectory()) {
        throw new SockitError('FORBIDDEN', `${JSON.stringify(relative)} is not a regular file or directory`);
      }
      return { handle, stats };
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  /** Opens the regular file `names` for reading. */
  async openFile(names: readonly string[]): Promise<JailedFile> {
    const dir = await this.openDir(names.slice(0, -1));
    try {
      const file = await this.openEntry(dir, names.at(-1)!);
      if (file.stats.isDirectory()) {
        await file.handle.close();
        throw new SockitError('BAD_REQUEST', `${JSON.stringify(dir.relative(names.at(-1)!))} is a directory`);
      }
      return file;
    } finally {
      await dir.close();
    }
  }

  /**
   * What `name` in `dir` is, symlinks resolved only when they stay inside: the stats of the
   * target, `undefined` when nothing is there, FORBIDDEN when a link leads out.
   */
  async entryStats(dir: JailedDir, name: string): Promise<Stats | undefined> {
    const path = dir.at(name);
    let stats: Stats | undefined;
    try {
      // Synchronous: a few microseconds, where a thread-pool round trip was most of the time of
      // a listing of many entries (and of every put's existence check).
      stats = lstatSync(path, { throwIfNoEntry: false });
    } catch (error) {
      throw fsFailure(error, dir.relative(name));
    }
    if (stats === undefined) return undefined;
    if (!stats.isSymbolicLink()) return stats;
    const target = await this.followInside(path, dir.relative(name));
    return stat(target);
  }

  /** The real target of a symlink, or FORBIDDEN when it leads out or names a reserved file. */
  async followInside(path: string, relative: string): Promise<string> {
    let target: string;
    try {
      target = await realpath(path);
    } catch (error) {
      throw fsFailure(error, relative);
    }
    if (!this.contains(target)) {
      throw new SockitError(
        'FORBIDDEN',
        `${JSON.stringify(relative)} is a symbolic link that leads outside the root`,
      );
    }
    const inner = target.slice(this.root.length).split(sep);
    if (inner.some((name) => name.startsWith(RESERVED_PREFIX))) {
      throw new SockitError('FORBIDDEN', `${JSON.stringify(relative)} leads to a reserved temporary file`);
    }
    return target;
  }

  async #child(dir: JailedDir, name: string, names: readonly string[], create: boolean): Promise<JailedDir> {
    const path = dir.at(name);
    const relative = joinRemotePath(names);
    try {
      return await this.#openDirVerified(path, names);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && create) {
        await mkdir(path, 0o755).catch((mkdirError: NodeJS.ErrnoException) => {
          if (mkdirError.code !== 'EEXIST') throw fsFailure(mkdirError, relative);
        });
        return this.#openDirVerified(path, names).catch((again: unknown) => {
          throw fsFailure(again, relative);
        });
      }
      if (await isLinkError(error, path)) {
        const target = await this.followInside(path, relative);
        return this.#openDirVerified(target, names).catch((again: unknown) => {
          throw fsFailure(again, relative);
        });
      }
      if (code === 'ENOTDIR' && create) {
        throw new SockitError('CONFLICT', `${JSON.stringify(relative)} is a file, not a directory`);
      }
      throw fsFailure(error, relative);
    }
  }

  async #openDirVerified(path: string, names: readonly string[]): Promise<JailedDir> {
    const handle = await open(path, DIR_FLAGS);
    const real = await this.locationOf(handle.fd, path);
    if (real === undefined || !this.contains(real)) {
      await handle.close().catch(() => {});
      throw new SockitError('FORBIDDEN', `${JSON.stringify(joinRemotePath(names))} leads outside the root`);
    }
    const base = this.#procFd ? `/proc/self/fd/${handle.fd}` : real;
    return new JailedDir(this, handle, names, base);
  }
}

/** O_NOFOLLOW met a symlink: Linux says ELOOP, some systems ENOTDIR or EMLINK. */
async function isLinkError(error: unknown, path: string): Promise<boolean> {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'EMLINK') return true;
  if (code !== 'ENOTDIR') return false;
  return lstat(path).then(
    (stats) => stats.isSymbolicLink(),
    () => false,
  );
}
