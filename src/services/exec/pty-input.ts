import { closeSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';

/** The first wait before a keystroke write the terminal refused is tried again, and the longest. */
const RETRY_FIRST_MS = 5;
const RETRY_MAX_MS = 100;

/**
 * Keystrokes into a pseudo-terminal's master: a Writable over its non-blocking descriptor that
 * never blocks the event loop and never spins on it. A command that stops reading its input
 * fills the terminal's input queue, and from then on a write to the master fails with EAGAIN:
 * - libuv cannot reopen a master as it reopens a slave, so it treats one as a "blocking" tty and
 *   retries EAGAIN in a loop: tty.ReadStream's writes would spin the whole server at 100 % CPU,
 *   every other client with it, for as long as the command does not read;
 * - the master polls writable all the while (Linux), so waiting for POLLOUT would spin too.
 * So each chunk is written at once with write(2); what the terminal did not take is tried again
 * on a timer that backs off to RETRY_MAX_MS, and the write's callback waits for it, which is the
 * backpressure a stdin writer expects. `destroy()` closes the descriptor.
 */
export class PtyInput extends Writable {
  readonly #fd: number;
  #retry: NodeJS.Timeout | undefined;

  constructor(fd: number) {
    super({ highWaterMark: 64 * 1024 });
    this.#fd = fd;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#push(chunk, 0, RETRY_FIRST_MS, callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // Called once, by destroy(): `destroyed` is already true, so no retry writes after this.
    clearTimeout(this.#retry);
    closeSync(this.#fd);
    callback(error);
  }

  #push(chunk: Buffer, offset: number, waitMs: number, callback: (error?: Error | null) => void): void {
    this.#retry = undefined;
    if (this.destroyed) return;
    let written = offset;
    try {
      while (written < chunk.length) {
        const n = writeSync(this.#fd, chunk, written, chunk.length - written);
        if (n <= 0) break;
        written += n;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') {
        callback(error as Error);
        return;
      }
    }
    if (written >= chunk.length) {
      callback();
      return;
    }
    // Retried whether or not anything is waiting: a server with nothing else to do may still exit.
    this.#retry = setTimeout(
      () => this.#push(chunk, written, Math.min(waitMs * 2, RETRY_MAX_MS), callback),
      waitMs,
    );
    this.#retry.unref();
  }
}
