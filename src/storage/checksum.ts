/**
 * Running whole-file checksums by name (the names and their negotiation live in
 * protocol/files.ts). xxHash64 comes from sockit's native addon (native/xxhash64.c, built by
 * `npm install`), which hashes the bytes where they lie at memory speed; where it did not build
 * (no compiler, not Linux), from `xxhash-wasm`: WebAssembly, which runs wherever Node does but
 * first copies every chunk into its own memory. The digests are the same. SHA-256 from
 * node:crypto.
 */
import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';
import { loadNative } from '../native.js';
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

/** The native XXH64 of native/xxhash64.c. */
interface NativeXxh64 {
  create(): object;
  update(state: object, data: Uint8Array): void;
  digest(state: object): string;
}

/** The native XXH64, or null where it is not built or SOCKIT_NO_NATIVE=1 asks to do without. */
const nativeXxh64 = (): NativeXxh64 | null => loadNative<NativeXxh64>('sockit_xxhash');

/** Which implementation `xxh64` uses in this process: `native`, or `wasm` (the fallback). */
export function xxh64Implementation(): 'native' | 'wasm' {
  return nativeXxh64() ? 'native' : 'wasm';
}

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
  const addon = nativeXxh64();
  if (addon) {
    const state = addon.create();
    return {
      name,
      update: (data) => addon.update(state, data),
      digest: () => addon.digest(state),
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
