/**
 * The client side of `put-batch` and `get-batch`: many small files of one directory in a single
 * request each way (the files service checks and publishes each as `put` would; a fetched batch
 * is verified whole before any file is written, then each is published as `get` does: a
 * temporary name, mode, mtime, fsync, rename). Local files are read with O_NOFOLLOW, so a file
 * swapped for a symlink after the walk is refused, not followed; reads and writes are
 * synchronous (storage/small-file.ts says why).
 */
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { SockitError } from '../errors.js';
import {
  acceptedChecksum,
  BATCH_MAX_FILE_BYTES,
  type BatchFile,
  CHECKSUMS,
  FILES_FRAMES,
  partialDownloadName,
  splitBatch,
} from '../protocol/files.js';
import { digestOf } from '../storage/checksum.js';
import { readSmallFile, writeSmallFile } from '../storage/small-file.js';
import type { Client } from './client.js';

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
    const data = readSmallFile(item.localPath, BATCH_MAX_FILE_BYTES);
    if (data === undefined) {
      throw new SockitError('CONFLICT', `${item.localPath} changed while it was synced: run the sync again`);
    }
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

/**
 * Fetches the small files `names` of `remoteDir` into the local directory `localDir` in one
 * `get-batch`. Resolves with the bytes written and the names the server skipped (no longer small
 * regular files there): the caller gets those one by one.
 */
export async function getBatch(
  client: Client,
  remoteDir: string,
  names: readonly string[],
  localDir: string,
  options: { signal?: AbortSignal } = {},
): Promise<{ bytes: number; skipped: string[] }> {
  const offers = [...CHECKSUMS];
  const reply = await client.call(
    { type: FILES_FRAMES.getBatch, path: remoteDir, names, checksums: offers },
    undefined,
    options.signal ? { signal: options.signal } : {},
  );
  const checksum = acceptedChecksum(reply.header.checksum, offers);
  const listed = Array.isArray(reply.header.files) ? reply.header.files : [];
  const files = listed.length > 0 ? splitBatch({ ...reply.header, checksum }, reply.body) : [];
  const asked = new Set(names);
  for (const { file, data } of files) {
    if (!asked.has(file.name)) {
      throw new SockitError(
        'INTEGRITY',
        `the server sent ${JSON.stringify(file.name)}, which was not asked for`,
      );
    }
    if ((await digestOf(checksum, data)) !== file.digest) {
      throw new SockitError(
        'INTEGRITY',
        `${checksum} of the downloaded ${remoteDir}/${file.name} does not match the server's; nothing of the batch was written, try again`,
      );
    }
  }
  let bytes = 0;
  for (const { file, data } of files) {
    const temp = join(localDir, partialDownloadName(file.name));
    writeSmallFile(temp, { bytes: data, mode: file.mode, mtimeMs: file.mtimeMs });
    renameSync(temp, join(localDir, file.name));
    bytes += data.length;
  }
  const skipped = Array.isArray(reply.header.skipped)
    ? reply.header.skipped.filter((name): name is string => typeof name === 'string' && asked.has(name))
    : [];
  return { bytes, skipped };
}
