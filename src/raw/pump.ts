import { read } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Input } from './stdio.js';

/** A running copy from an input into a writable; `done` resolves at the input's EOF. */
export interface Pump {
  /** Resolves once the input reached EOF and every chunk was handed to the sink; rejects on a read error. */
  readonly done: Promise<void>;
  /** Stops reading (the session ended for another reason). */
  stop(): void;
}

/** Size of one read from a file descriptor: large reads mean few system calls per gigabyte. */
export const FILE_CHUNK_BYTES = 2 << 20;
/** Buffers in flight per file pump: reading continues while earlier chunks are still being sent. */
export const FILE_CHUNK_COUNT = 4;

/**
 * Copies `input` into `sink` with backpressure, calling `onChunk` (counters, taps) before each
 * chunk is written.
 */
export function pumpInput(input: Input, sink: Writable, onChunk?: (chunk: Buffer) => void): Pump {
  return input.kind === 'fd' ? pumpFd(input.fd, sink, onChunk) : pumpStream(input.stream, sink, onChunk);
}

/**
 * The fast path for files and devices: reads of `FILE_CHUNK_BYTES` into a small pool of reused
 * buffers. A buffer returns to the pool when the sink has written it, so memory stays bounded
 * (pool × chunk) and no fresh pages are faulted in per chunk.
 */
function pumpFd(fd: number, sink: Writable, onChunk?: (chunk: Buffer) => void): Pump {
  const pool: Buffer[] = [];
  let created = 0;
  let reading = false;
  let stopped = false;
  let inFlight = 0;
  let eof = false;
  let settle!: { resolve: () => void; reject: (error: Error) => void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const finishIfIdle = (): void => {
    if (eof && inFlight === 0) settle.resolve();
  };
  const next = (): void => {
    if (reading || stopped || eof || sink.destroyed) return;
    let buffer = pool.pop();
    if (buffer === undefined) {
      if (created === FILE_CHUNK_COUNT) return; // every buffer is being sent; a write callback calls next()
      buffer = Buffer.allocUnsafeSlow(FILE_CHUNK_BYTES);
      created++;
    }
    reading = true;
    const target = buffer;
    read(fd, target, 0, target.length, null, (error, bytes) => {
      reading = false;
      if (stopped) return;
      if (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          pool.push(target);
          setImmediate(next); // a non-blocking descriptor with nothing yet: try again shortly
          return;
        }
        stopped = true;
        settle.reject(error);
        return;
      }
      if (bytes === 0) {
        pool.push(target);
        eof = true;
        finishIfIdle();
        return;
      }
      const chunk = bytes === target.length ? target : target.subarray(0, bytes);
      onChunk?.(chunk);
      inFlight++;
      sink.write(chunk, () => {
        inFlight--;
        pool.push(target);
        finishIfIdle();
        next();
      });
      next();
    });
  };
  next();
  return {
    done,
    stop() {
      stopped = true;
    },
  };
}

function pumpStream(stream: NodeJS.ReadableStream, sink: Writable, onChunk?: (chunk: Buffer) => void): Pump {
  let stopped = false;
  let settle!: { resolve: () => void; reject: (error: Error) => void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const resume = (): void => {
    if (!stopped) stream.resume();
  };
  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    onChunk?.(bytes);
    if (!sink.write(bytes)) {
      stream.pause();
      sink.once('drain', resume);
    }
  };
  const onEnd = (): void => {
    cleanup();
    settle.resolve();
  };
  const onError = (error: Error): void => {
    cleanup();
    settle.reject(error);
  };
  const cleanup = (): void => {
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('error', onError);
    sink.off('drain', resume);
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.resume();
  return {
    done,
    stop() {
      if (stopped) return;
      stopped = true;
      cleanup();
      stream.pause();
    },
  };
}
