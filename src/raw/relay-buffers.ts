/**
 * The read buffers that `relaySockets` lends to its bulk directions, shared by every relay of
 * the process. A direction borrows one only once it has carried `RELAY_BULK_BYTES` (a transfer,
 * not a short exchange), so short connections never allocate one, and at most
 * `RELAY_BUFFER_LIMIT` are lent at once, so memory stays bounded however many transfers run:
 * the others keep Node's per-read buffers, which is only slower.
 */

/** One read of up to this much on the reused-buffer path. */
export const RELAY_BUFFER_BYTES = 256 * 1024;
/** Bytes a direction carries on per-read buffers before it borrows a reused one. */
export const RELAY_BULK_BYTES = 1024 * 1024;
/** Buffers lent at once, process-wide (64 × 256 KiB = 16 MiB). */
export const RELAY_BUFFER_LIMIT = 64;

const free: Buffer[] = [];
let lent = 0;

/** A buffer for one direction, or undefined when `RELAY_BUFFER_LIMIT` are lent already. */
export function borrowRelayBuffer(): Buffer | undefined {
  if (lent >= RELAY_BUFFER_LIMIT) return undefined;
  lent++;
  return free.pop() ?? Buffer.allocUnsafeSlow(RELAY_BUFFER_BYTES);
}

/**
 * Gives a buffer back. Only once nothing can touch it any more: its reader and the writer of
 * its last chunk are both closed.
 */
export function returnRelayBuffer(buffer: Buffer): void {
  lent--;
  free.push(buffer);
}

/** Buffers lent now (tests check that relays give theirs back). */
export function relayBuffersLent(): number {
  return lent;
}
