import type { FileHandle } from 'node:fs/promises';

/** At most this many bytes go to the disk in one `writev` call. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** IOV_MAX is 1024 on Linux; stay well below it. */
const MAX_BATCH_BUFFERS = 256;

/** Bytes queued at which `write()` asks the caller to wait. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;

/**
 * Writes chunks to a file in arrival order at increasing positions, batching what piles up
 * into one `writev`. Memory stays bounded: past the high-water mark `write()` returns a promise
 * that settles once the disk has caught up, which a frame handler returns to pause its socket.
 * Chunks are kept until written, not copied.
 */
export class SequentialWriter {
  readonly #handle: FileHandle;
  readonly #onError: ((error: Error) => void) | undefined;
  #position: number;
  #pending: Buffer[] = [];
  #queuedBytes = 0;
  #running: Promise<void> | undefined;
  #waiters: (() => void)[] = [];
  #error: Error | undefined;

  /** `onError` is called once with the first write error; later writes are dropped. */
  constructor(handle: FileHandle, position: number, options: { onError?: (error: Error) => void } = {}) {
    this.#handle = handle;
    this.#position = position;
    this.#onError = options.onError;
  }

  /** Bytes queued and not yet written. */
  get busy(): boolean {
    return this.#queuedBytes > 0;
  }

  /** Queues a chunk. A returned promise means: wait for it before writing more. */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.#error || chunk.length === 0) return undefined;
    this.#pending.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#running ??= this.#run();
    if (this.#queuedBytes < HIGH_WATER_BYTES) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Waits until everything queued is on the file; returns the end position or throws the error. */
  async flush(): Promise<number> {
    while (this.#running) await this.#running;
    if (this.#error) throw this.#error;
    return this.#position;
  }

  async #run(): Promise<void> {
    try {
      while (this.#pending.length > 0 && !this.#error) {
        const batch = this.#takeBatch();
        try {
          await writeAll(this.#handle, batch, this.#position);
        } catch (error) {
          this.#error = error instanceof Error ? error : new Error(String(error));
          this.#pending = [];
          this.#onError?.(this.#error);
          break;
        }
        let bytes = 0;
        for (const chunk of batch) bytes += chunk.length;
        this.#position += bytes;
        this.#queuedBytes -= bytes;
        if (this.#queuedBytes <= HIGH_WATER_BYTES / 2) this.#wake();
      }
    } finally {
      this.#running = undefined;
      this.#wake();
    }
  }

  #takeBatch(): Buffer[] {
    let count = 0;
    let bytes = 0;
    while (count < this.#pending.length && count < MAX_BATCH_BUFFERS && bytes < MAX_BATCH_BYTES) {
      bytes += this.#pending[count]!.length;
      count++;
    }
    return this.#pending.splice(0, count);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** `writev` until every byte is written: a regular file may take fewer bytes than offered. */
async function writeAll(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let rest = buffers;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await (rest.length === 1
      ? handle.write(rest[0]!, 0, rest[0]!.length, at)
      : handle.writev(rest, at));
    at += bytesWritten;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const buffer of rest) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
        continue;
      }
      next.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
    if (bytesWritten === 0 && next.length > 0) throw new Error('the file system accepted no bytes');
    rest = next;
  }
}
