/**
 * Read buffers that come back: a framed TLS connection reads each decrypted record into one of
 * these (Node's `onread`, transport/reused-buffer.ts) instead of a buffer Node allocates per
 * record, and a buffer returns to the pool once nothing holds its bytes any more.
 *
 * Why: at a few hundred MiB/s the per-record buffers are a gigabyte of fresh external memory a
 * second, and V8 answers external memory with a full mark-compact every ~64 MiB: about a tenth
 * of a tunnel server's CPU (docs/benchmarks.md, eleventh session). Recycled buffers allocate
 * nothing in the steady state.
 *
 * Safety first: a buffer is counted, and returned only when its count falls to zero. The decoder
 * holds one count while it still has bytes of it; every frame with body bytes in it holds one
 * more, given back only by `frame.release()`. A consumer that never calls release (any but the
 * tunnel streams, which release once their writes completed) keeps its buffers out of the pool
 * for good: they are garbage-collected as before. So a forgotten release costs memory reuse,
 * never a byte; an early one would corrupt data, which is why only code that knows its writes
 * completed calls it.
 */

/** One buffer's size: the most a TLS record carries (16 KiB), what Node's TLS hands out per read. */
export const POOLED_READ_BYTES = 16 * 1024;

/** Most buffers kept for reuse across the process (4 MiB); more are left to the GC. */
const POOL_CAPACITY = 256;

/** A pooled buffer and how many holders its bytes still have. */
export interface ReadLease {
  readonly buffer: Buffer;
  refs: number;
}

const free: Buffer[] = [];
const leases = new WeakMap<ArrayBufferLike, ReadLease>();

/** A buffer to read into: a returned one, else a new one (each its own ArrayBuffer). */
export function takeReadBuffer(): Buffer {
  const reused = free.pop();
  if (reused !== undefined) return reused;
  const buffer = Buffer.allocUnsafeSlow(POOLED_READ_BYTES);
  leases.set(buffer.buffer, { buffer, refs: 0 });
  return buffer;
}

/** The lease of the pooled buffer `bytes` lie in, or undefined for memory of any other origin. */
export function leaseOf(bytes: Uint8Array): ReadLease | undefined {
  return leases.get(bytes.buffer);
}

/** One more holder of the lease's bytes. */
export function retainLease(lease: ReadLease): void {
  lease.refs++;
}

/** One holder fewer; the last one returns the buffer to the pool. */
export function releaseLease(lease: ReadLease): void {
  if (--lease.refs === 0 && free.length < POOL_CAPACITY) free.push(lease.buffer);
}

/** Buffers waiting in the pool (for tests). */
export function pooledReadBuffers(): number {
  return free.length;
}
