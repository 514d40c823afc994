/**
 * What both ends of the files service agree on (PROTOCOL section 4, "files"): frame types,
 * the entry shape, the chunk size, and the names of temporary files.
 * No I/O here: the server service and the client library both import it.
 */
import { createHash } from 'node:crypto';
import { SockitError } from '../errors.js';
import { declareFrames } from './schema.js';

/** Frame types of the files service. */
export const FILES_FRAMES = {
  put: 'put',
  putReady: 'put-ready',
  data: 'data',
  /** A `data` chunk compressed with the request's negotiated `compression` (see COMPRESSIONS). */
  dataCompressed: 'data-z',
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
  /** Creates a directory (and its parents) and sets its mode; answered by `made`. */
  mkdir: 'mkdir',
  /** Creates or replaces a symlink whose target stays inside the root; answered by `made`. */
  symlink: 'symlink',
  made: 'made',
  /** Many small files of one directory in one frame (sync); answered by `put-batch-done`. */
  putBatch: 'put-batch',
  putBatchDone: 'put-batch-done',
  /** Many small files of one directory in one reply (sync, pulling): `get-batch-result`. */
  getBatch: 'get-batch',
  getBatchResult: 'get-batch-result',
} as const;

/** At most this many files in one `put-batch`. */
export const BATCH_MAX_FILES = 256;
/** Files up to this size travel in batches; larger ones as their own `put`. */
export const BATCH_MAX_FILE_BYTES = 64 * 1024;
/** A batch is closed once its body reaches this many bytes. */
export const BATCH_BODY_BYTES = 1024 * 1024;
/** ...or once its names reach this many bytes: the header must stay under 64 KiB. */
export const BATCH_NAME_BYTES = 24 * 1024;

/** One file of a `put-batch`: its name in the batch's directory and the facts put would carry. */
export interface BatchFile {
  name: string;
  fileSize: number;
  mode: number;
  mtimeMs: number;
  /** Hex digest of the contents in the batch's `checksum`. */
  digest: string;
}

/**
 * The files of a `put-batch` and their bytes: the body is their contents back to back, in the
 * order listed. BAD_REQUEST when a field is malformed or the sizes do not add up to the body.
 */
export function splitBatch(
  header: Record<string, unknown>,
  body: Buffer,
): { file: BatchFile; data: Buffer }[] {
  const { files, checksum } = header;
  if (!isChecksumName(checksum))
    throw new SockitError('UNSUPPORTED', `put-batch: unknown checksum ${String(checksum)}`);
  if (!Array.isArray(files) || files.length === 0 || files.length > BATCH_MAX_FILES) {
    throw new SockitError('BAD_REQUEST', `put-batch: "files" must list 1-${BATCH_MAX_FILES} files`);
  }
  const out: { file: BatchFile; data: Buffer }[] = [];
  let at = 0;
  for (const raw of files as Record<string, unknown>[]) {
    const { name, fileSize, mode, mtimeMs, digest } = raw ?? {};
    const count = (value: unknown, max: number): value is number =>
      typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
    if (
      typeof name !== 'string' ||
      !count(fileSize, BATCH_MAX_FILE_BYTES) ||
      !count(mode, 0o7777) ||
      typeof mtimeMs !== 'number' ||
      !Number.isFinite(mtimeMs) ||
      mtimeMs < 0 ||
      !isDigestHex(checksum, digest)
    ) {
      throw new SockitError(
        'BAD_REQUEST',
        'put-batch: each file needs name, fileSize (≤ 64 KiB), mode, mtimeMs and digest',
      );
    }
    if (at + fileSize > body.length)
      throw new SockitError('BAD_REQUEST', 'put-batch: the body is shorter than the files');
    out.push({
      file: { name, fileSize, mode, mtimeMs, digest: digest.toLowerCase() },
      data: body.subarray(at, at + fileSize),
    });
    at += fileSize;
  }
  if (at !== body.length)
    throw new SockitError('BAD_REQUEST', 'put-batch: the body is longer than the files');
  return out;
}

/**
 * Bytes per `data` frame. Large enough that the per-frame cost (a header, an event, a hash
 * call) vanishes next to the copy, small enough that a paused connection holds little memory.
 */
export const DATA_CHUNK_BYTES = 1024 * 1024;

/**
 * Most bytes one `data-z` frame may decompress to. Above DATA_CHUNK_BYTES so a peer with larger
 * chunks still fits; the receiver stops decompressing here (a "zip bomb" is INTEGRITY).
 */
export const MAX_DECOMPRESSED_CHUNK_BYTES = 4 * DATA_CHUNK_BYTES;

/** One file or directory as `list` and `stat` report it. Paths are relative to the root. */
export interface FileEntry {
  /** `/`-separated, relative to the served root, e.g. `dir/a.bin`; `""` is the root itself. */
  path: string;
  /** `link` only in a listing asked with `links: true` (otherwise links are followed). */
  kind: 'file' | 'dir' | 'link';
  /** Bytes for files, 0 for directories and links. */
  size: number;
  mtimeMs: number;
  /** Permission bits, e.g. 420 (0o644). */
  mode: number;
  /** SHA-256 hex of the contents, only when `stat` was asked for it. */
  sha256?: string;
  /** A link's target as `readlink` gives it (kind `link` only). */
  target?: string;
}

/**
 * Whether a symlink's target lands inside the root, judged from the real location of the link's
 * directory (`dirNames`, relative to the root, symlinks already resolved) and the target text
 * alone. Refused: absolute targets, targets that climb above the root, and `..` after a name
 * (`a/../b`): the kernel resolves `a` first, and if `a` is itself a link that climbing would
 * start from somewhere else than the text suggests. No I/O: both sides of `sync` use it.
 */
export function linkTargetInside(dirNames: readonly string[], target: string): boolean {
  if (target === '' || target.startsWith('/') || target.includes('\\') || target.includes('\0')) return false;
  let depth = dirNames.length;
  let descended = false;
  for (const segment of target.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (descended || depth === 0) return false;
      depth--;
      continue;
    }
    if (segment.startsWith(RESERVED_PREFIX)) return false;
    descended = true;
  }
  return true;
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
 * Where a symlink for `name` is made before it is renamed over `name` (so replacing one is
 * atomic). Hashed like the partial upload, so it fits whatever the length of `name`.
 */
export function partialLinkName(name: string): string {
  return `${RESERVED_PREFIX}link-${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
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

/**
 * SHA-256 of nothing: what a 0-byte file hashes to. Written out, not computed: every CLI run
 * loads this module (through the frame catalogue), and hashing at load would be crypto work
 * at start-up for a constant (test/protocol/catalogue.test.ts checks it against node:crypto).
 */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Listing order, by name and depth first: `a`, `a/b`, `a.txt` (a path separator sorts before any character). */
export function byPath(a: FileEntry, b: FileEntry): number {
  const left = a.path.replaceAll('/', '\0');
  const right = b.path.replaceAll('/', '\0');
  return left < right ? -1 : left > right ? 1 : 0;
}

/**
 * Whole-file checksums this version knows, in order of preference: the first one both ends
 * have is used. `xxh64` (xxHash64, about 5× SHA-256's speed here) catches transport and disk
 * corruption; `sha256` is also collision-resistant, for when the digest is compared with
 * one published elsewhere. Neither defends against a malicious sender: TLS and the token do.
 */
export const CHECKSUMS = ['xxh64', 'sha256'] as const;

/** A whole-file checksum name. */
export type ChecksumName = (typeof CHECKSUMS)[number];

/** What a peer that names no checksum (an older sockit) uses. */
export const LEGACY_CHECKSUM: ChecksumName = 'sha256';

/** Hex digits of each checksum's digest. */
const DIGEST_HEX_LENGTH: Record<ChecksumName, number> = { xxh64: 16, sha256: 64 };

/** True when `name` is a checksum this version knows. */
export function isChecksumName(name: unknown): name is ChecksumName {
  return typeof name === 'string' && (CHECKSUMS as readonly string[]).includes(name);
}

/**
 * The server's choice from a request's `checksums` (the client's list, its preference first):
 * the first one this side also has. No list is an older client: SHA-256, as it always was.
 */
export function negotiateChecksum(offered: unknown): ChecksumName {
  if (offered === undefined) return LEGACY_CHECKSUM;
  if (!Array.isArray(offered) || offered.length === 0 || !offered.every((name) => typeof name === 'string')) {
    throw new SockitError('BAD_REQUEST', 'field "checksums" must be a non-empty list of checksum names');
  }
  const chosen = offered.find(isChecksumName);
  if (chosen === undefined) {
    throw new SockitError(
      'UNSUPPORTED',
      `none of the checksums ${offered.slice(0, 8).join(', ')} is known here; this side has ${CHECKSUMS.join(', ')}`,
    );
  }
  return chosen;
}

/**
 * The checksum a `put-ready` or `get-start` names, checked against what was offered. A reply
 * that names none comes from an older server: SHA-256.
 */
export function acceptedChecksum(named: unknown, offered: readonly ChecksumName[]): ChecksumName {
  const chosen = named === undefined ? LEGACY_CHECKSUM : named;
  if (!isChecksumName(chosen) || !offered.includes(chosen)) {
    throw new SockitError(
      'UNSUPPORTED',
      `the server chose checksum ${String(chosen)}, which was not offered (${offered.join(', ')})`,
    );
  }
  return chosen;
}

/** True when `text` has the form of a `name` digest (hex, either case). */
export function isDigestHex(name: ChecksumName, text: unknown): text is string {
  return typeof text === 'string' && text.length === DIGEST_HEX_LENGTH[name] && /^[0-9a-fA-F]+$/.test(text);
}

/**
 * A digest field of a frame: `digest` (or `prefixDigest`), or for SHA-256 the older
 * `sha256` (`prefixSha256`) that peers before negotiation send. Lowercase, or undefined.
 */
export function digestField(
  header: Record<string, unknown>,
  name: ChecksumName,
  prefix = false,
): string | undefined {
  const value =
    header[prefix ? 'prefixDigest' : 'digest'] ??
    (name === 'sha256' ? header[prefix ? 'prefixSha256' : 'sha256'] : undefined);
  return isDigestHex(name, value) ? value.toLowerCase() : undefined;
}

/**
 * The digest fields of a frame: `checksum` and `digest`, plus `sha256` when it is SHA-256 so
 * an older peer still finds the field it knows.
 */
export function digestFields(name: ChecksumName, digest: string, prefix = false): Record<string, string> {
  if (prefix) return { prefixDigest: digest, ...(name === 'sha256' ? { prefixSha256: digest } : {}) };
  return { checksum: name, digest, ...(name === 'sha256' ? { sha256: digest } : {}) };
}

/**
 * Chunk compressions this version may use, in order of preference (`compress` in a put or get
 * request lists the ones the client has, `compression` in `put-ready`/`get-start` names the
 * one chosen). `zstd` only where node:zlib has it (Node >= 22.15); `deflate` is raw DEFLATE
 * (RFC 1951, no gzip header or CRC: the whole-file checksum already covers the bytes).
 * Compression is per chunk: a chunk that would not shrink is sent as plain `data`.
 */
export const COMPRESSIONS = ['zstd', 'deflate'] as const;

/** A chunk compression name. */
export type CompressionName = (typeof COMPRESSIONS)[number];

/** True when `name` is a compression this version knows. */
export function isCompressionName(name: unknown): name is CompressionName {
  return typeof name === 'string' && (COMPRESSIONS as readonly string[]).includes(name);
}

/**
 * The server's choice from a request's `compress` (the client's list, its preference first):
 * the first one this side also has (`available`). No list, or nothing in common, is no
 * compression: unlike the checksum it is optional, so it never fails a transfer.
 */
export function negotiateCompression(
  offered: unknown,
  available: readonly CompressionName[],
): CompressionName | undefined {
  if (offered === undefined) return undefined;
  if (!Array.isArray(offered) || !offered.every((name) => typeof name === 'string')) {
    throw new SockitError('BAD_REQUEST', 'field "compress" must be a list of compression names');
  }
  return offered.find((name): name is CompressionName => isCompressionName(name) && available.includes(name));
}

/**
 * The compression a `put-ready` or `get-start` names, checked against what was offered. None
 * named (an older server, or nothing in common) is no compression.
 */
export function acceptedCompression(
  named: unknown,
  offered: readonly CompressionName[],
): CompressionName | undefined {
  if (named === undefined) return undefined;
  if (!isCompressionName(named) || !offered.includes(named)) {
    throw new SockitError(
      'UNSUPPORTED',
      `the server chose compression ${String(named)}, which was not offered (${offered.join(', ') || 'none'})`,
    );
  }
  return named;
}

/**
 * A remote path as a request names it. The bound is loose (4 characters per allowed byte): the
 * server's jail refuses a path over MAX_PATH_BYTES bytes as FORBIDDEN, with its reason.
 */
const PATH = {
  kind: 'string',
  max: 4 * MAX_PATH_BYTES,
  message: 'field "path" must be a string, e.g. "dir/a.bin"',
} as const;
/** A byte count or offset in a file. */
const COUNT = { kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER } as const;
/** Permission bits a put or mkdir may set. */
const MODE = {
  kind: 'integer',
  min: 0,
  max: 0o7777,
  optional: true,
  message: 'field "mode" must be 0-0o7777',
} as const;
/** A modification time a put or mkdir may set, in milliseconds since the epoch. */
const MTIME = {
  kind: 'number',
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  optional: true,
  message: 'field "mtimeMs" must be a non-negative number of milliseconds',
} as const;
/** A digest in hex (xxh64: 16 digits, SHA-256: 64), either case. */
const DIGEST = { kind: 'string', max: 64, pattern: /^[0-9a-fA-F]+$/, optional: true } as const;
/** The checksums a request offers, its preference first (names this side does not know are skipped). */
const CHECKSUM_OFFER = {
  kind: 'strings',
  minItems: 1,
  maxItems: 16,
  itemMax: 32,
  optional: true,
  message: 'field "checksums" must be a non-empty list of checksum names',
} as const;
/**
 * The checksum a reply chose. Any name: one that was not offered is the receiver's UNSUPPORTED
 * (`acceptedChecksum`), not a malformed frame.
 */
const CHECKSUM_CHOSEN = { kind: 'string', min: 1, max: 32, optional: true } as const;
/** The chunk compressions a request offers (an empty list, or none in common: no compression). */
const COMPRESS_OFFER = {
  kind: 'strings',
  minItems: 0,
  maxItems: 16,
  itemMax: 32,
  optional: true,
  message: 'field "compress" must be a list of compression names',
} as const;
/** The compression a reply chose; one not offered is the receiver's UNSUPPORTED (`acceptedCompression`). */
const COMPRESSION_CHOSEN = { kind: 'string', min: 1, max: 32, optional: true } as const;
/** Largest body of a batch: it closes once past BATCH_BODY_BYTES, so one more small file at most. */
const BATCH_FRAME_BYTES = BATCH_BODY_BYTES + BATCH_MAX_FILE_BYTES;
/** Most entries in one `list-result` or `list-part` (a header is at most 64 KiB anyway). */
const MAX_LIST_ENTRIES = 65536;

/** The files service's frames, declared once (docs/files.md). */
export const FILES_FRAME_SPECS = declareFrames({
  [FILES_FRAMES.put]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    followUps: [FILES_FRAMES.data, FILES_FRAMES.dataCompressed, FILES_FRAMES.putEnd],
    replies: [FILES_FRAMES.putReady, FILES_FRAMES.putDone],
    final: [FILES_FRAMES.putDone],
    doc: 'uploads a file: `put-ready` says from which offset, then `data`… and `put-end`',
    fields: {
      path: PATH,
      fileSize: { ...COUNT, message: 'a put needs "fileSize": the number of bytes in the whole file' },
      overwrite: { kind: 'boolean', optional: true },
      resume: { kind: 'boolean', optional: true },
      mode: MODE,
      mtimeMs: MTIME,
      checksums: CHECKSUM_OFFER,
      compress: COMPRESS_OFFER,
    },
  },
  [FILES_FRAMES.putReady]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'send from `offset` (a kept partial upload); `prefixDigest` is the kept prefix',
    fields: {
      offset: COUNT,
      checksum: CHECKSUM_CHOSEN,
      compression: COMPRESSION_CHOSEN,
      prefixDigest: DIGEST,
      prefixSha256: DIGEST,
    },
  },
  [FILES_FRAMES.data]: {
    service: 'files',
    role: 'follow-up',
    from: 'both',
    id: 'required',
    body: DATA_CHUNK_BYTES,
    phases: ['authenticated'],
    doc: 'file bytes, in order',
    fields: {},
  },
  [FILES_FRAMES.dataCompressed]: {
    service: 'files',
    role: 'follow-up',
    from: 'both',
    id: 'required',
    body: DATA_CHUNK_BYTES,
    phases: ['authenticated'],
    doc: 'a chunk of file bytes compressed with the negotiated `compression` (only where it shrinks)',
    fields: {},
  },
  [FILES_FRAMES.putEnd]: {
    service: 'files',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'all bytes sent: the whole-file digest',
    fields: { checksum: CHECKSUM_CHOSEN, digest: DIGEST, sha256: DIGEST },
  },
  [FILES_FRAMES.putDone]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: the file is published under its name',
    fields: {
      fileSize: { ...COUNT, optional: true },
      checksum: CHECKSUM_CHOSEN,
      digest: DIGEST,
      sha256: DIGEST,
    },
  },
  [FILES_FRAMES.get]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.getStart, FILES_FRAMES.data, FILES_FRAMES.dataCompressed, FILES_FRAMES.getEnd],
    final: [FILES_FRAMES.getEnd],
    doc: 'downloads a file from `offset` (a resume)',
    fields: {
      path: PATH,
      offset: { ...COUNT, optional: true, message: 'field "offset" must be a whole number of bytes' },
      checksums: CHECKSUM_OFFER,
      compress: COMPRESS_OFFER,
    },
  },
  [FILES_FRAMES.getStart]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'the file: its length, mode and time; `data` frames follow',
    fields: {
      fileSize: COUNT,
      mode: { kind: 'integer', min: 0, max: 0o7777, optional: true },
      mtimeMs: { kind: 'number', min: 0, max: Number.MAX_SAFE_INTEGER, optional: true },
      checksum: CHECKSUM_CHOSEN,
      compression: COMPRESSION_CHOSEN,
      prefixDigest: DIGEST,
      prefixSha256: DIGEST,
    },
  },
  [FILES_FRAMES.getEnd]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: the whole-file digest',
    fields: { checksum: CHECKSUM_CHOSEN, digest: DIGEST, sha256: DIGEST },
  },
  [FILES_FRAMES.list]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.listPart, FILES_FRAMES.listResult],
    final: [FILES_FRAMES.listResult],
    doc: 'lists a directory (a tree with `recursive`); `stream` allows `list-part` frames',
    fields: {
      path: { ...PATH, optional: true },
      recursive: { kind: 'boolean', optional: true },
      stream: { kind: 'boolean', optional: true },
      links: { kind: 'boolean', optional: true, doc: 'symlinks listed as links, not followed' },
    },
  },
  [FILES_FRAMES.listPart]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'some of the entries of a streamed listing',
    fields: { entries: { kind: 'list', maxItems: MAX_LIST_ENTRIES } },
  },
  [FILES_FRAMES.listResult]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: the (last) entries',
    fields: { entries: { kind: 'list', maxItems: MAX_LIST_ENTRIES } },
  },
  [FILES_FRAMES.stat]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.statResult],
    final: [FILES_FRAMES.statResult],
    doc: 'one entry; `sha256` has the server hash the file',
    fields: { path: { ...PATH, optional: true }, sha256: { kind: 'boolean', optional: true } },
  },
  [FILES_FRAMES.statResult]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: the entry',
    fields: { entry: { kind: 'json' } },
  },
  [FILES_FRAMES.delete]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.deleted],
    final: [FILES_FRAMES.deleted],
    doc: 'deletes a file, an empty directory or a symlink',
    fields: { path: PATH },
  },
  [FILES_FRAMES.deleted]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: it is gone',
    fields: { path: { ...PATH, optional: true } },
  },
  [FILES_FRAMES.mkdir]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.made],
    final: [FILES_FRAMES.made],
    doc: 'makes a directory and its parents (like `mkdir -p`), with `mode` and `mtimeMs` if given',
    fields: {
      path: PATH,
      mode: MODE,
      mtimeMs: MTIME,
    },
  },
  [FILES_FRAMES.symlink]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.made],
    final: [FILES_FRAMES.made],
    doc: '`path` becomes a link to `target`, which must stay inside the root',
    fields: {
      path: PATH,
      target: {
        kind: 'string',
        min: 1,
        max: 4096,
        message: 'field "target" must be the link\'s target, e.g. "../a.txt"',
      },
    },
  },
  [FILES_FRAMES.made]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: the directory or link exists',
    fields: { path: { ...PATH, optional: true } },
  },
  [FILES_FRAMES.putBatch]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: BATCH_FRAME_BYTES,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.putBatchDone],
    final: [FILES_FRAMES.putBatchDone],
    doc: 'small files of one directory, their bytes one after another in the body',
    fields: {
      path: { ...PATH, optional: true },
      checksum: { kind: 'string', min: 1, max: 32 },
      files: {
        kind: 'list',
        maxItems: BATCH_MAX_FILES,
        doc: '`{name, fileSize, mode, mtimeMs, digest}` each (checked by `splitBatch`)',
      },
    },
  },
  [FILES_FRAMES.putBatchDone]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: every file of the batch is published',
    fields: { files: { kind: 'integer', min: 0, max: BATCH_MAX_FILES, optional: true } },
  },
  [FILES_FRAMES.getBatch]: {
    service: 'files',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    replies: [FILES_FRAMES.getBatchResult],
    final: [FILES_FRAMES.getBatchResult],
    doc: 'small files of one directory in one reply',
    fields: {
      path: { ...PATH, optional: true },
      checksums: CHECKSUM_OFFER,
      names: {
        kind: 'strings',
        minItems: 1,
        maxItems: BATCH_MAX_FILES,
        itemMax: 4 * MAX_NAME_BYTES,
        message: `get-batch: "names" must list 1-${BATCH_MAX_FILES} names`,
      },
    },
  },
  [FILES_FRAMES.getBatchResult]: {
    service: 'files',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: BATCH_FRAME_BYTES,
    doc: 'final: the files found (their bytes in the body), and the names skipped',
    fields: {
      checksum: CHECKSUM_CHOSEN,
      files: { kind: 'list', maxItems: BATCH_MAX_FILES },
      skipped: {
        kind: 'strings',
        minItems: 0,
        maxItems: BATCH_MAX_FILES,
        itemMax: 4 * MAX_NAME_BYTES,
        optional: true,
      },
    },
  },
});
