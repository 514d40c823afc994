/**
 * The client side of `put-batch`: many small local files of one directory sent to one remote
 * directory in a single request (the files service checks and publishes each as `put` would).
 * Files are read with O_NOFOLLOW, so a file swapped for a symlink after the walk is refused,
 * not followed. The reads are synchronous: a batch is at most about 1 MiB of small files, and
 * one thread-pool round trip per read would cost more than the read itself.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { SockitError } from '../errors.js';
import { BATCH_MAX_FILE_BYTES, type BatchFile, CHECKSUMS, FILES_FRAMES } from '../protocol/files.js';
import { digestOf } from '../storage/checksum.js';
import type { Client } from './client.js';

const { O_RDONLY, O_NOFOLLOW } = constants;

/** One local file of a batch, and its name in the remote directory. */
export interface BatchItem {
  localPath: string;
  name: string;
}

/** Sends `items` into `remoteDir` in one `put-batch`; resolves with the bytes sent. */
export async function putBatch(
  client: Client,
  remoteDir: string,
  items: readonly BatchItem[],
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  const checksum = CHECKSUMS[0];
  const files: BatchFile[] = [];
  const bodies: Buffer[] = [];
  for (const item of items) {
    const data = readSmallFile(item.localPath);
    bodies.push(data.bytes);
    files.push({
      name: item.name,
      fileSize: data.bytes.length,
      mode: data.mode,
      mtimeMs: data.mtimeMs,
      digest: await digestOf(checksum, data.bytes),
    });
  }
  const body = Buffer.concat(bodies);
  await client.call(
    { type: FILES_FRAMES.putBatch, path: remoteDir, checksum, files },
    body,
    options.signal ? { signal: options.signal } : {},
  );
  return body.length;
}

function readSmallFile(path: string): { bytes: Buffer; mode: number; mtimeMs: number } {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW);
  } catch (error) {
    throw new SockitError('NOT_FOUND', `${path}: ${(error as Error).message}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.size > BATCH_MAX_FILE_BYTES) {
      throw new SockitError('CONFLICT', `${path} changed while it was synced: run the sync again`);
    }
    const bytes = Buffer.allocUnsafe(stats.size);
    for (let at = 0; at < bytes.length; ) {
      const read = readSync(fd, bytes, at, bytes.length - at, at);
      if (read === 0)
        throw new SockitError('CONFLICT', `${path} shrank while it was read: run the sync again`);
      at += read;
    }
    return { bytes, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs };
  } finally {
    closeSync(fd);
  }
}
