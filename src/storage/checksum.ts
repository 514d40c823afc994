/**
 * Running whole-file checksums by name (the names and their negotiation live in
 * protocol/files.ts). xxHash64 comes from `xxhash-wasm`: WebAssembly, so nothing is compiled
 * at install and it runs wherever Node does; SHA-256 from node:crypto.
 */
import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';
import type { ChecksumName } from '../protocol/files.js';

/** A checksum being computed over a stream of bytes. */
export interface Checksum {
  readonly name: ChecksumName;
  update(data: Uint8Array): void;
  /** Hex digest of everything so far; more may be added after (a resumed prefix is checked so). */
  digest(): string;
}

type XXHashApi = Awaited<ReturnType<typeof xxhash>>;
let wasm: Promise<XXHashApi> | undefined;

/** Starts a checksum. The WebAssembly module is compiled once, on first use. */
export async function createChecksum(name: ChecksumName): Promise<Checksum> {
  if (name === 'sha256') {
    const hash = createHash('sha256');
    return {
      name,
      update: (data) => void hash.update(data),
      digest: () => hash.copy().digest('hex'),
    };
  }
  wasm ??= xxhash();
  const hash = (await wasm).create64();
  return {
    name,
    update: (data) => void hash.update(data),
    digest: () => hash.digest().toString(16).padStart(16, '0'),
  };
}

/** One-shot digest of `data`. */
export async function digestOf(name: ChecksumName, data: Uint8Array): Promise<string> {
  const checksum = await createChecksum(name);
  checksum.update(data);
  return checksum.digest();
}
