/**
 * Per-chunk compression of file transfers (the names and their negotiation live in
 * protocol/files.ts). node:zlib does the work on libuv's thread pool, so on a machine with a
 * spare core the compression of one chunk overlaps the hashing and sending of the one before.
 * Chunks that would not shrink are sent as they are, and a cheap probe on a sample decides
 * that before the whole chunk is compressed, so incompressible files pay almost nothing.
 */
import zlib from 'node:zlib';
import { SockitError } from '../errors.js';
import {
  COMPRESSIONS,
  type CompressionName,
  FILES_FRAMES,
  MAX_DECOMPRESSED_CHUNK_BYTES,
} from '../protocol/files.js';
import { bodyParts, type Frame } from '../protocol/frame.js';

type Compress = (
  data: Buffer,
  options: object,
  callback: (error: Error | null, result: Buffer) => void,
) => void;

/** node:zlib with the zstd functions of Node >= 22.15, absent before. */
const zstd = zlib as unknown as {
  zstdCompress?: Compress;
  zstdCompressSync?: (data: Buffer, options?: object) => Buffer;
  zstdDecompress?: Compress;
};

/** One compression as this process runs it. */
interface Codec {
  compress(data: Buffer): Promise<Buffer>;
  /** Compressed length of a small sample, synchronously: the "does it pay" probe. */
  probe(sample: Buffer): number;
  /** Rejects with ERR_BUFFER_TOO_LARGE once the output passes `limit`, without producing it. */
  decompress(data: Buffer, limit: number): Promise<Buffer>;
}

const call = (run: Compress, data: Buffer, options: object): Promise<Buffer> =>
  new Promise((resolve, reject) =>
    run(data, options, (error, result) => (error ? reject(error) : resolve(result))),
  );

/** Level 1: several times faster than the default 6, and most of its gain on text. */
const DEFLATE = { level: 1 };

const CODECS: Partial<Record<CompressionName, Codec>> = {
  deflate: {
    compress: (data) => call(zlib.deflateRaw as Compress, data, DEFLATE),
    probe: (sample) => zlib.deflateRawSync(sample, DEFLATE).length,
    decompress: (data, limit) => call(zlib.inflateRaw as Compress, data, { maxOutputLength: limit }),
  },
};
if (zstd.zstdCompress && zstd.zstdCompressSync && zstd.zstdDecompress) {
  const { zstdCompress, zstdCompressSync, zstdDecompress } = zstd;
  CODECS.zstd = {
    compress: (data) => call(zstdCompress, data, {}),
    probe: (sample) => zstdCompressSync(sample).length,
    decompress: (data, limit) => call(zstdDecompress, data, { maxOutputLength: limit }),
  };
}

/** The compressions this process has, in the protocol's order of preference. */
export const AVAILABLE_COMPRESSIONS: readonly CompressionName[] = COMPRESSIONS.filter(
  (name) => CODECS[name] !== undefined,
);

/** A chunk counts as compressed only at this fraction of its size or less; else it goes plain. */
const PAYS = 0.9;
/** Chunks smaller than this go plain: the frame would hardly shrink. */
const MIN_CHUNK_BYTES = 4096;
/** Bytes from the middle of a chunk that the probe compresses. */
const PROBE_BYTES = 16 * 1024;
/** After n probes in a row that did not pay, the next 2^n - 1 chunks go plain unprobed. */
const MAX_MISSES = 6;
/** Chunks being compressed at once while the caller sends earlier ones. */
const PIPELINE_DEPTH = 2;

/** A chunk ready to send: `body` is `raw` itself or its compressed form. */
export interface EncodedChunk {
  raw: Buffer;
  body: Buffer;
  /** The frame type that carries it: `data`, or `data-z` when `body` is compressed. */
  type: typeof FILES_FRAMES.data | typeof FILES_FRAMES.dataCompressed;
}

const plain = (raw: Buffer): EncodedChunk => ({ raw, body: raw, type: FILES_FRAMES.data });

/**
 * Decides per chunk whether compressing pays and compresses when it does. Random data costs one
 * 16 KiB probe per 64 chunks once it has shown it does not compress.
 */
class ChunkCompressor {
  readonly #codec: Codec;
  #misses = 0;
  #skip = 0;

  constructor(name: CompressionName) {
    const codec = CODECS[name];
    if (!codec) throw new SockitError('UNSUPPORTED', `compression ${name} is not available in this Node.js`);
    this.#codec = codec;
  }

  /** Called in chunk order; the promises may settle in any order. */
  encode(raw: Buffer): EncodedChunk | Promise<EncodedChunk> {
    if (raw.length < MIN_CHUNK_BYTES) return plain(raw);
    if (this.#skip > 0) {
      this.#skip--;
      return plain(raw);
    }
    const from = Math.max(0, (raw.length - PROBE_BYTES) >> 1);
    const sample = raw.subarray(from, from + PROBE_BYTES);
    if (this.#codec.probe(sample) > sample.length * PAYS) {
      this.#missed();
      return plain(raw);
    }
    this.#misses = 0;
    return this.#codec.compress(raw).then((body) => {
      if (body.length > raw.length * PAYS) {
        this.#missed();
        return plain(raw);
      }
      return { raw, body, type: FILES_FRAMES.dataCompressed };
    });
  }

  #missed(): void {
    this.#misses = Math.min(this.#misses + 1, MAX_MISSES);
    this.#skip = 2 ** this.#misses - 1;
  }
}

/**
 * The chunks of `chunks`, compressed with `compression` where it pays (all plain without one),
 * in order. Up to two are compressed at once on the thread pool while the caller handles the
 * one before.
 */
export async function* encodeChunks(
  chunks: AsyncIterable<Buffer>,
  compression: CompressionName | undefined,
): AsyncGenerator<EncodedChunk> {
  if (compression === undefined) {
    for await (const raw of chunks) yield plain(raw);
    return;
  }
  const compressor = new ChunkCompressor(compression);
  const queue: Promise<EncodedChunk>[] = [];
  for await (const raw of chunks) {
    const encoded = Promise.resolve(compressor.encode(raw));
    // A chunk the caller never takes (it stopped early) must not be an unhandled rejection.
    encoded.catch(() => {});
    queue.push(encoded);
    if (queue.length >= PIPELINE_DEPTH) yield await queue.shift()!;
  }
  while (queue.length > 0) yield await queue.shift()!;
}

/**
 * The file bytes of a `data` or `data-z` frame, in order: the body's pieces as they arrived
 * (no copy), or the body decompressed with the negotiated `compression`. Decompression stops at
 * MAX_DECOMPRESSED_CHUNK_BYTES, so a hostile peer's small chunk cannot unpack into gigabytes
 * (INTEGRITY, as for any corrupt chunk).
 */
export function chunkParts(
  frame: Frame,
  compression: CompressionName | undefined,
): readonly Buffer[] | Promise<readonly Buffer[]> {
  const { type } = frame.header;
  if (type === FILES_FRAMES.data) return bodyParts(frame);
  const codec = compression === undefined ? undefined : CODECS[compression];
  if (codec === undefined) {
    throw new SockitError('BAD_REQUEST', `a "${type}" frame needs a compression negotiated first`);
  }
  return codec.decompress(frame.body, MAX_DECOMPRESSED_CHUNK_BYTES).then(
    (bytes) => [bytes],
    (error: NodeJS.ErrnoException) => {
      const message =
        error.code === 'ERR_BUFFER_TOO_LARGE'
          ? `a compressed chunk expands past the ${MAX_DECOMPRESSED_CHUNK_BYTES}-byte limit`
          : `a compressed chunk is corrupt (${error.message})`;
      throw new SockitError('INTEGRITY', `${message}; nothing was published`, { cause: error });
    },
  );
}
