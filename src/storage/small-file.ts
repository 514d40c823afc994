/**
 * Small files in one go, for the batch requests of `sync` (put-batch, get-batch): read whole, or
 * written whole under a temporary name with mode, mtime and fsync, ready to be renamed over the
 * target. The calls are synchronous on purpose: a batch is about 1 MiB of files of at most
 * 64 KiB, and a thread-pool round trip per call cost more than the call itself.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  futimesSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

/** A small regular file's bytes and the facts a copy keeps. */
export interface SmallFile {
  bytes: Buffer;
  mode: number;
  mtimeMs: number;
}

/**
 * Reads a regular file of at most `maxBytes` whole, without following a symlink (ELOOP) or
 * blocking on a FIFO; undefined when it is not such a file (any more).
 */
export function readSmallFile(path: string, maxBytes: number): SmallFile | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > maxBytes) return undefined;
    const bytes = Buffer.allocUnsafe(stats.size);
    let at = 0;
    while (at < bytes.length) {
      const read = readSync(fd, bytes, at, bytes.length - at, at);
      if (read === 0) return undefined; // it shrank while read: not the file that was stat'ed
      at += read;
    }
    return { bytes, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `tempPath` afresh (whatever had the name is unlinked, never written through) with
 * `bytes`, the mode (owner read/write always, so it can be replaced and removed later) and the
 * mtime, and fsyncs it: after a crash a renamed copy is whole or absent.
 */
export function writeSmallFile(tempPath: string, file: SmallFile): void {
  const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(tempPath, flags, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    unlinkSync(tempPath);
    fd = openSync(tempPath, flags, 0o600);
  }
  try {
    for (let at = 0; at < file.bytes.length; ) {
      at += writeSync(fd, file.bytes, at, file.bytes.length - at, at);
    }
    fchmodSync(fd, (file.mode & 0o777) | 0o600);
    futimesSync(fd, new Date(), new Date(file.mtimeMs));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
