/**
 * The client side of the files service: put, get, list, stat and delete one path at a time.
 * `files-tree.ts` builds directory copies on top of these.
 *
 * Both directions verify a whole-file checksum end to end (negotiated with the server: xxh64
 * unless `checksum` asks for another, SHA-256 with an older server) and never expose half a file: the server publishes
 * an upload only when it matches; a download is written under a hidden temporary name next to
 * the target and renamed only after its digest matches. Both resume: an interrupted put keeps its
 * partial on the server, an interrupted get keeps its partial locally.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, open, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errnoMeaning, errnoOf, fromFileError, SockitError } from '../errors.js';
import {
  acceptedChecksum,
  acceptedCompression,
  byPath,
  CHECKSUMS,
  type ChecksumName,
  type CompressionName,
  digestField,
  digestFields,
  FILES_FRAMES,
  type FileEntry,
  isSha256Hex,
  partialDownloadName,
} from '../protocol/files.js';
import type { Frame, FrameHeader } from '../protocol/frame.js';
import { type Checksum, createChecksum } from '../storage/checksum.js';
import { AVAILABLE_COMPRESSIONS, chunkParts, encodeChunks } from '../storage/chunk-compression.js';
import { hashRange, readChunks } from '../storage/file-reader.js';
import { SequentialWriter } from '../storage/file-writer.js';
import { publishFile } from '../storage/publish.js';
import type { Client } from './client.js';
import type { ClientRequest } from './request.js';

export type { FileEntry } from '../protocol/files.js';

/** Where a transfer stands; reported after every chunk. */
export interface TransferProgress {
  /** Bytes of the file that are on the receiving side, a resumed prefix included. */
  bytes: number;
  /** Size of the whole file. */
  total: number;
  /** Bytes that were already there when this transfer started (resume), else 0. */
  resumedFrom: number;
}

/** Options of `client.put` and `client.get`. */
export interface TransferOptions {
  /** Replace an existing target. Default false: an existing target is CONFLICT. */
  overwrite?: boolean;
  /**
   * Continue an interrupted transfer from its kept partial file. When the target already exists
   * with the same SHA-256, the transfer is skipped (`skipped: true`) instead of CONFLICT.
   */
  resume?: boolean;
  /** Cancels the transfer; a partial file is kept for a later `resume`. */
  signal?: AbortSignal;
  onProgress?: (progress: TransferProgress) => void;
  /** Keep the file's permission bits and modification time. Default true. */
  preserve?: boolean;
  /**
   * Offer only this whole-file checksum (e.g. `sha256` to get a digest comparable with
   * `sha256sum`). Default: every one in `CHECKSUMS`, fastest first; the server picks.
   */
  checksum?: ChecksumName;
  /**
   * Offer chunk compression (every one in `AVAILABLE_COMPRESSIONS`, zstd first where Node has
   * it); chunks that do not shrink still go plain. Default false: on a fast link compressing
   * costs more time than it saves.
   */
  compress?: boolean;
}

/** What a finished transfer did. */
export interface TransferResult {
  remotePath: string;
  localPath: string;
  size: number;
  /** The whole-file checksum that verified the transfer. */
  checksum: ChecksumName;
  /** Its hex digest of the whole file. */
  digest: string;
  /** Bytes taken from a kept partial instead of being sent again. */
  resumedFrom: number;
  /** True when `resume` found the target already complete and identical. */
  skipped: boolean;
  /** The compression negotiated for this transfer, if any. */
  compression?: CompressionName;
  /** Bytes of file data that crossed the connection (compressed or not), frame headers aside. */
  wireBytes: number;
}

/** Options of `client.list`. */
export interface ListOptions {
  recursive?: boolean;
  /** Report symlinks as `kind: "link"` with their `target` instead of following them (sync). */
  links?: boolean;
  signal?: AbortSignal;
}

/** Options of `client.stat`. */
export interface StatOptions {
  /** Ask the server to hash the file (it reads the whole file). */
  sha256?: boolean;
  signal?: AbortSignal;
}

const { O_RDWR, O_WRONLY, O_CREAT, O_TRUNC } = constants;

/** Uploads `localPath` to `remotePath`. */
export async function putFile(
  client: Client,
  localPath: string,
  remotePath: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const handle = await open(localPath, 'r').catch((error: unknown) => {
    throw localFailure(error, localPath);
  });
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new SockitError('USAGE', `${localPath} is not a regular file`);
    try {
      return await uploadOnce(client, handle, stats, localPath, remotePath, options, options.resume ?? false);
    } catch (error) {
      if (!(error instanceof SockitError)) throw error;
      if (error.code === 'CONFLICT' && options.resume && !options.overwrite) {
        // The target exists: finished by an earlier run? Compare hashes before giving up.
        const skipped = await skipIfSame(client, remotePath, localPath, handle, stats.size, options.signal);
        if (skipped) return skipped;
      }
      if (error.code === 'INTEGRITY' && error.details?.restart === true) {
        // The server's kept partial is not a prefix of this file: send it whole.
        return await uploadOnce(client, handle, stats, localPath, remotePath, options, false);
      }
      throw error;
    }
  } finally {
    await handle.close().catch(() => {});
  }
}

async function uploadOnce(
  client: Client,
  handle: FileHandle,
  stats: { size: number; mode: number; mtimeMs: number },
  localPath: string,
  remotePath: string,
  options: TransferOptions,
  resume: boolean,
): Promise<TransferResult> {
  const total = stats.size;
  const preserve = options.preserve ?? true;
  const offers = checksumOffers(options);
  const request = client.open(
    {
      type: FILES_FRAMES.put,
      path: remotePath,
      fileSize: total,
      overwrite: options.overwrite ?? false,
      resume,
      checksums: offers,
      ...compressOffer(options),
      ...(preserve ? { mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs } : {}),
    },
    undefined,
    signalOption(options.signal),
  );
  const ready = await firstFrame(request, FILES_FRAMES.putReady);
  const offset = ready.offset;
  let wireBytes = 0;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || offset > total) {
    request.cancel();
    throw new SockitError('INTEGRITY', `the server wants to resume at ${String(offset)} of ${total} bytes`, {
      details: { restart: true },
    });
  }
  let hash: Checksum;
  let compression: CompressionName | undefined;
  try {
    compression = acceptedCompression(ready.compression, compressOffer(options).compress ?? []);
    hash = await createChecksum(acceptedChecksum(ready.checksum, offers));
  } catch (error) {
    request.cancel();
    throw error;
  }
  try {
    if (offset > 0) {
      await hashRange(handle, 0, offset, hash, options.signal);
      const prefix = digestField(ready, hash.name, true);
      if (prefix !== undefined && prefix !== hash.digest()) {
        throw new SockitError('INTEGRITY', 'the kept partial upload is not a prefix of this file', {
          details: { restart: true },
        });
      }
    }
    let sent = offset;
    options.onProgress?.({ bytes: sent, total, resumedFrom: offset });
    // The next chunk is read, compressed and hashed while the previous one is still being flushed.
    let flushing: Promise<unknown> | undefined;
    for await (const chunk of encodeChunks(readChunks(handle, offset, total), compression)) {
      if (request.settled) break;
      hash.update(chunk.raw);
      if (flushing) await flushing;
      if (request.settled) break;
      flushing = request.send({ type: chunk.type }, chunk.body)
        ? undefined
        : Promise.race([request.drained(), request.done]);
      // A rejection (the server's error) surfaces through `request.done`, never unhandled.
      flushing?.catch(() => {});
      sent += chunk.raw.length;
      wireBytes += chunk.body.length;
      options.onProgress?.({ bytes: sent, total, resumedFrom: offset });
    }
  } catch (error) {
    // When the server ended the request, its error explains more than a local consequence.
    const serverEnded = request.settled;
    request.cancel();
    if (serverEnded) await request.done;
    throw localFailure(error, localPath);
  }
  const digest = hash.digest();
  if (!request.settled) request.send({ type: FILES_FRAMES.putEnd, ...digestFields(hash.name, digest) });
  const done = await request.done;
  if (digestField(done.header, hash.name) !== digest) {
    throw new SockitError(
      'INTEGRITY',
      `the server stored ${remotePath} with a different ${hash.name} than was sent`,
    );
  }
  return {
    remotePath,
    localPath,
    size: total,
    checksum: hash.name,
    digest,
    resumedFrom: offset,
    skipped: false,
    ...(compression ? { compression } : {}),
    wireBytes,
  };
}

/** Downloads `remotePath` to `localPath`. */
export async function getFile(
  client: Client,
  remotePath: string,
  localPath: string,
  options: TransferOptions = {},
): Promise<TransferResult> {
  const target = localPath;
  const existing = await lstat(target).catch(() => undefined);
  if (existing?.isDirectory()) throw new SockitError('CONFLICT', `${target} is a directory`);
  if (existing && !options.overwrite) {
    if (options.resume && existing.isFile()) {
      const handle = await open(target, 'r');
      try {
        const skipped = await skipIfSame(
          client,
          remotePath,
          localPath,
          handle,
          existing.size,
          options.signal,
        );
        if (skipped) return skipped;
      } finally {
        await handle.close();
      }
    }
    throw new SockitError('CONFLICT', `${target} already exists: pass --overwrite to replace it`);
  }
  const tempPath = join(dirname(target), partialDownloadName(basename(target)));
  const temp = await open(
    tempPath,
    options.resume ? O_RDWR | O_CREAT : O_WRONLY | O_CREAT | O_TRUNC,
    0o600,
  ).catch((error: unknown) => {
    throw localFailure(error, tempPath);
  });
  let keep = true;
  try {
    let offset = options.resume ? (await temp.stat()).size : 0;
    if (offset > 0) {
      const remote = await statEntry(client, remotePath, { signal: options.signal });
      if (offset > remote.size) {
        await temp.truncate(0);
        offset = 0;
      }
    }
    let result = await download(client, remotePath, temp, offset, options);
    if (result.integrity?.details?.restart === true) {
      // The kept prefix is not the remote file's (it changed since): download it whole.
      await temp.truncate(0);
      offset = 0;
      result = await download(client, remotePath, temp, offset, options);
    }
    if (result.integrity) {
      keep = false;
      throw result.integrity;
    }
    const { start } = result;
    if (options.preserve ?? true) {
      await temp.chmod((Number(start.mode) & 0o777) | 0o600);
      if (typeof start.mtimeMs === 'number') await temp.utimes(new Date(), new Date(start.mtimeMs));
    }
    await temp.sync();
    await temp.close();
    if (!(await publishFile(tempPath, target, options.overwrite ?? false))) {
      throw new SockitError(
        'CONFLICT',
        `${target} appeared during the download: pass --overwrite to replace it`,
      );
    }
    return {
      remotePath,
      localPath,
      size: result.size,
      checksum: result.checksum,
      digest: result.digest,
      resumedFrom: offset,
      skipped: false,
      ...(result.compression ? { compression: result.compression } : {}),
      wireBytes: result.wireBytes,
    };
  } catch (error) {
    await temp.close().catch(() => {});
    const size = (await lstat(tempPath).catch(() => undefined))?.size ?? 0;
    if (!keep || size === 0) await unlink(tempPath).catch(() => {});
    throw localFailure(error, target);
  }
}

/** How one `get` request ended: an INTEGRITY failure is returned, so the caller may restart. */
interface Downloaded {
  start: FrameHeader;
  size: number;
  checksum: ChecksumName;
  digest: string;
  compression?: CompressionName | undefined;
  wireBytes: number;
  integrity?: SockitError;
}

/**
 * Runs one `get` request into `temp` from `offset`; checks size and digest. The server names
 * the checksum only in `get-start`, so a kept prefix is hashed with each one offered.
 */
async function download(
  client: Client,
  remotePath: string,
  temp: FileHandle,
  offset: number,
  options: TransferOptions,
): Promise<Downloaded> {
  const offers = checksumOffers(options);
  const candidates = await Promise.all(offers.map((name) => createChecksum(name)));
  // A kept prefix exists only with resume, whose temp is open read-write: hash it through that.
  if (offset > 0) {
    const tee = {
      update: (data: Uint8Array): void => {
        for (const each of candidates) each.update(data);
      },
    };
    await hashRange(temp, 0, offset, tee, options.signal);
  }
  let hash: Checksum = candidates[0]!;
  let failure: unknown;
  const request = client.open(
    { type: FILES_FRAMES.get, path: remotePath, offset, checksums: offers, ...compressOffer(options) },
    undefined,
    signalOption(options.signal),
  );
  const stop = (error: unknown): void => {
    failure ??= error;
    request.cancel();
  };
  const writer = new SequentialWriter(temp, offset, {
    onError: (error) => stop(localFailure(error, remotePath)),
  });
  let start: FrameHeader | undefined;
  let total = 0;
  let received = offset;
  let wireBytes = 0;
  let compression: CompressionName | undefined;
  request.onFrame = (frame: Frame) => {
    const { header } = frame;
    if (header.type === FILES_FRAMES.getStart) {
      const size = header.fileSize;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < offset) {
        stop(new SockitError('INTEGRITY', `the server announced a bad size for ${remotePath}`));
        return;
      }
      try {
        const name = acceptedChecksum(header.checksum, offers);
        hash = candidates.find((each) => each.name === name)!;
        compression = acceptedCompression(header.compression, compressOffer(options).compress ?? []);
      } catch (error) {
        stop(error);
        return;
      }
      const prefix = offset > 0 ? digestField(header, hash.name, true) : undefined;
      if (prefix !== undefined && prefix !== hash.digest()) {
        stop(
          new SockitError('INTEGRITY', `the kept partial download is not a prefix of ${remotePath}`, {
            details: { restart: true },
          }),
        );
        return;
      }
      start = header;
      total = size;
      options.onProgress?.({ bytes: received, total, resumedFrom: offset });
      return;
    }
    const isData = header.type === FILES_FRAMES.data || header.type === FILES_FRAMES.dataCompressed;
    if (!isData || start === undefined || failure !== undefined) return;
    wireBytes += header.size ?? 0;
    const take = (parts: readonly Buffer[]): Promise<void> | undefined => {
      if (failure !== undefined) return undefined;
      let length = 0;
      for (const part of parts) length += part.length;
      if (received + length > total) {
        stop(new SockitError('INTEGRITY', `the server sent more than the announced ${total} bytes`));
        return undefined;
      }
      received += length;
      // Socket chunks and decompressed ones are fresh allocations: queued without a copy.
      let wait: Promise<void> | undefined;
      for (const part of parts) {
        hash.update(part);
        wait = writer.write(part) ?? wait;
      }
      options.onProgress?.({ bytes: received, total, resumedFrom: offset });
      return wait;
    };
    let bytes: readonly Buffer[] | Promise<readonly Buffer[]>;
    try {
      bytes = chunkParts(frame, compression);
    } catch (error) {
      stop(new SockitError('INTEGRITY', (error as Error).message));
      return;
    }
    // Decompressing holds the socket, so chunks are hashed and written in order.
    return bytes instanceof Promise ? bytes.then(take, stop) : take(bytes);
  };
  let end: Frame;
  try {
    end = await request.done;
  } catch (error) {
    await writer.flush().catch(() => {});
    const reason = failure ?? error;
    if (reason instanceof SockitError && reason.code === 'INTEGRITY') {
      return {
        start: start ?? { type: 'none' },
        size: total,
        checksum: hash.name,
        digest: '',
        wireBytes,
        integrity: reason,
      };
    }
    throw reason;
  }
  await writer.flush();
  if (failure) throw failure;
  const digest = hash.digest();
  const checksum = hash.name;
  if (start === undefined || received !== total) {
    return {
      start: start ?? { type: 'none' },
      size: total,
      checksum,
      digest,
      wireBytes,
      integrity: new SockitError(
        'INTEGRITY',
        `received ${received} of ${total} bytes of ${remotePath}; nothing was written, try again`,
      ),
    };
  }
  if (digestField(end.header, checksum) !== digest) {
    return {
      start,
      size: total,
      checksum,
      digest,
      wireBytes,
      integrity: new SockitError(
        'INTEGRITY',
        `${checksum} of the downloaded ${remotePath} does not match the server's; nothing was written, try again`,
      ),
    };
  }
  return { start, size: total, checksum, digest, compression, wireBytes };
}

/** Lists a directory (or a whole tree), sorted by name, or the one entry of a file. */
export async function listEntries(
  client: Client,
  path = '',
  options: ListOptions = {},
): Promise<FileEntry[]> {
  const entries: FileEntry[] = [];
  const request = client.open(
    {
      type: FILES_FRAMES.list,
      path,
      recursive: options.recursive ?? false,
      stream: true,
      ...(options.links ? { links: true } : {}),
    },
    undefined,
    signalOption(options.signal),
  );
  request.onFrame = (frame) => {
    if (frame.header.type === FILES_FRAMES.listPart) entries.push(...parseEntries(frame.header.entries));
  };
  const done = await request.done;
  entries.push(...parseEntries(done.header.entries));
  // A streamed listing arrives in the server's directory order.
  return entries.sort(byPath);
}

/** One entry; with `sha256` the server hashes the file. */
export async function statEntry(client: Client, path: string, options: StatOptions = {}): Promise<FileEntry> {
  const frame = await client.call(
    { type: FILES_FRAMES.stat, path, ...(options.sha256 ? { sha256: true } : {}) },
    undefined,
    {
      // Hashing a large file takes as long as reading it: no default deadline then.
      ...(options.sha256 ? { timeoutMs: 0 } : {}),
      ...signalOption(options.signal),
    },
  );
  const [entry] = parseEntries([frame.header.entry]);
  if (!entry) throw new SockitError('INTERNAL', 'the server sent a malformed stat entry');
  return entry;
}

/** Deletes a file, an empty directory, or a symlink (not its target). */
export async function deleteEntry(
  client: Client,
  path: string,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  await client.call({ type: FILES_FRAMES.delete, path }, undefined, signalOption(options.signal));
}

// ---- helpers ---------------------------------------------------------------------------

/** The `compress` field a transfer sends: the compressions this side has, or nothing. */
function compressOffer(options: TransferOptions): { compress?: CompressionName[] } {
  return options.compress ? { compress: [...AVAILABLE_COMPRESSIONS] } : {};
}

/** The checksums a transfer offers, in order of preference. */
function checksumOffers(options: TransferOptions): ChecksumName[] {
  return options.checksum ? [options.checksum] : [...CHECKSUMS];
}

function signalOption(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

/** Resolves with the first frame of `type`; rejects with the request's error if it comes first. */
function firstFrame(request: ClientRequest, type: string): Promise<FrameHeader> {
  return new Promise<FrameHeader>((resolve, reject) => {
    request.onFrame = (frame) => {
      if (frame.header.type === type) resolve(frame.header);
    };
    request.done.then(
      () => reject(new SockitError('INTERNAL', `the server ended the request without "${type}"`)),
      reject,
    );
  });
}

/**
 * When the remote file has the local file's size, compares SHA-256 (the server hashes its copy)
 * and, if they are equal, returns the result of a transfer skipped for that.
 */
async function skipIfSame(
  client: Client,
  remotePath: string,
  localPath: string,
  local: FileHandle,
  localSize: number,
  signal: AbortSignal | undefined,
): Promise<TransferResult | undefined> {
  const remote = await statEntry(client, remotePath, { signal }).catch(() => undefined);
  if (remote?.kind !== 'file' || remote.size !== localSize) return undefined;
  const hash = createHash('sha256');
  await hashRange(local, 0, localSize, hash, signal);
  const localSha = hash.digest('hex');
  const remoteSha = (await statEntry(client, remotePath, { sha256: true, ...signalOption(signal) })).sha256;
  if (remoteSha !== localSha) return undefined;
  return {
    remotePath,
    localPath,
    size: localSize,
    checksum: 'sha256',
    digest: localSha,
    resumedFrom: localSize,
    skipped: true,
    wireBytes: 0,
  };
}

function parseEntries(value: unknown): FileEntry[] {
  if (!Array.isArray(value)) return [];
  const entries: FileEntry[] = [];
  for (const item of value) {
    if (typeof item !== 'object' || item === null) continue;
    const raw = item as Record<string, unknown>;
    if (typeof raw.path !== 'string' || (raw.kind !== 'file' && raw.kind !== 'dir' && raw.kind !== 'link')) {
      continue;
    }
    if (raw.kind === 'link' && typeof raw.target !== 'string') continue;
    const entry: FileEntry = {
      path: raw.path,
      kind: raw.kind,
      size: typeof raw.size === 'number' ? raw.size : 0,
      mtimeMs: typeof raw.mtimeMs === 'number' ? raw.mtimeMs : 0,
      mode: typeof raw.mode === 'number' ? raw.mode : 0,
    };
    if (isSha256Hex(raw.sha256)) entry.sha256 = raw.sha256.toLowerCase();
    if (raw.kind === 'link') entry.target = raw.target as string;
    entries.push(entry);
  }
  return entries;
}

/** Local file-system errors get the errno table's code and the local path. */
function localFailure(error: unknown, path: string): unknown {
  if (error instanceof SockitError) return error;
  switch (errnoOf(error)) {
    case 'ENOENT':
      return new SockitError('NOT_FOUND', `${path}: no such local file or directory`, { cause: error });
    case 'ENOSPC':
    case 'EDQUOT':
      return new SockitError('UNAVAILABLE', `${path}: the local disk is full; free space and use --resume`, {
        cause: error,
      });
    case 'EISDIR':
      return new SockitError('USAGE', `${path} is a directory: use -r`, { cause: error });
    default:
      return errnoMeaning(error) ? fromFileError(error, path) : error;
  }
}
