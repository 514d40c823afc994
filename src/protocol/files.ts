/**
 * What both ends of the files service agree on (PROTOCOL section 4, "files"): frame types,
 * the entry shape, the chunk size, and the names of temporary files.
 * No I/O here: the server service and the client library both import it.
 */
import { createHash } from 'node:crypto';

/** Frame types of the files service. */
export const FILES_FRAMES = {
  put: 'put',
  putReady: 'put-ready',
  data: 'data',
  putEnd: 'put-end',
  putDone: 'put-done',
  get: 'get',
  getStart: 'get-start',
  getEnd: 'get-end',
  list: 'list',
  listPart: 'list-part',
  listResult: 'list-result',
  stat: 'stat',
  statResult: 'stat-result',
  delete: 'delete',
  deleted: 'deleted',
} as const;

/**
 * Bytes per `data` frame. Large enough that the per-frame cost (a header, an event, a hash
 * call) vanishes next to the copy, small enough that a paused connection holds little memory.
 */
export const DATA_CHUNK_BYTES = 1024 * 1024;

/** One file or directory as `list` and `stat` report it. Paths are relative to the root. */
export interface FileEntry {
  /** `/`-separated, relative to the served root, e.g. `dir/a.bin`; `""` is the root itself. */
  path: string;
  kind: 'file' | 'dir';
  /** Bytes for files, 0 for directories. */
  size: number;
  mtimeMs: number;
  /** Permission bits, e.g. 420 (0o644). */
  mode: number;
  /** SHA-256 hex of the contents, only when `stat` was asked for it. */
  sha256?: string;
}

/**
 * Every temporary file either side creates starts with this: the server refuses paths that
 * name one (`FORBIDDEN`) and leaves them out of listings.
 */
export const RESERVED_PREFIX = '.sockit-';

/** Longest name of one path segment, in UTF-8 bytes (the common file-system limit). */
export const MAX_NAME_BYTES = 255;
/** Longest relative path accepted, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;

/**
 * The kept partial upload of `name` in its directory. Deterministic, so a resumed put (even
 * after a server restart) finds it; hashed, so it fits whatever the length of `name`.
 */
export function partialUploadName(name: string): string {
  return `${RESERVED_PREFIX}part-${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
}

/**
 * Where a download of `name` lands until its SHA-256 matches: next to the target, hidden, and
 * deterministic so `--resume` finds it.
 */
export function partialDownloadName(name: string): string {
  const readable = `${RESERVED_PREFIX}get-${name}`;
  if (Buffer.byteLength(readable) <= MAX_NAME_BYTES) return readable;
  return `${RESERVED_PREFIX}get-${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
}

/** True when `text` looks like a lowercase or uppercase SHA-256 hex digest. */
export function isSha256Hex(text: unknown): text is string {
  return typeof text === 'string' && /^[0-9a-fA-F]{64}$/.test(text);
}

/** SHA-256 of nothing: what a 0-byte file hashes to. */
export const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** Listing order, by name and depth first: `a`, `a/b`, `a.txt` (a path separator sorts before any character). */
export function byPath(a: FileEntry, b: FileEntry): number {
  const left = a.path.replaceAll('/', '\0');
  const right = b.path.replaceAll('/', '\0');
  return left < right ? -1 : left > right ? 1 : 0;
}
