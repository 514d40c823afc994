import { writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { fromSystemError, SockitError } from '../errors.js';
import { readIntoReusedBuffer } from '../transport/reused-buffer.js';
import { type Pump, pumpInput } from './pump.js';
import type { Taps } from './session-log.js';
import type { Input } from './stdio.js';

/** One read of up to this much when the reused-buffer path is on. */
const RECEIVE_BUFFER_BYTES = 256 * 1024;

export interface RelayOptions {
  socket: Socket;
  /** What we send. Undefined: `--recv-only`, nothing is read and our side stays open until the peer ends. */
  input?: Input | undefined;
  /** Where received bytes go. Undefined: `--send-only`, they are read and dropped. */
  output?: Writable | undefined;
  /**
   * The file descriptor behind `output` (1 for stdout), when writing it synchronously is right
   * (a file, a pipe, /dev/null): received bytes are then read into one reused buffer and written
   * straight through, the fast path for large transfers.
   */
  outputFd?: number | undefined;
  /** Input EOF shuts down our write side (default). False: `--no-shutdown`, it stays open. */
  shutdown?: boolean;
  /**
   * The peer's EOF ends the session even while input remains: right for a person at a terminal,
   * who has nobody left to type to. Otherwise we keep sending until our own EOF.
   */
  stopOnPeerEof?: boolean;
  /** Close after this long without traffic in either direction (TIMEOUT). */
  idleTimeoutMs?: number;
  taps?: Taps | undefined;
}

export interface RelayResult {
  sent: number;
  received: number;
  /** Why the session failed; undefined when it ended the normal way (both sides done). */
  error: SockitError | undefined;
}

/**
 * Joins a socket and the local side (stdin/stdout) with netcat's semantics, done predictably:
 *
 * - bytes flow both ways with backpressure (a slow stdout pauses the socket, a slow peer pauses stdin);
 * - EOF on input shuts down our write side, and we keep reading until the peer ends its side;
 * - the session ends when both directions are done, and resolves once the socket is closed.
 *
 * A reset after the peer already ended its side is the normal end of many servers and not an error.
 */
export function relay(options: RelayOptions): Promise<RelayResult> {
  const { socket, input, output, taps } = options;
  const shutdown = options.shutdown ?? true;
  socket.allowHalfOpen = true;
  let sent = 0;
  let received = 0;
  let peerEnded = false;
  let inputEnded = input === undefined;
  let failure: Error | undefined;
  let pump: Pump | undefined;

  const finishIfDone = (): void => {
    if (!peerEnded) return;
    if (inputEnded || input === undefined || options.stopOnPeerEof) {
      pump?.stop();
      if (!socket.writableEnded) socket.end();
    }
  };

  const fast =
    (output === undefined || options.outputFd !== undefined) &&
    readIntoReusedBuffer(socket, Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES), (chunk) => {
      received += chunk.length;
      taps?.received?.(chunk);
      if (output === undefined) return true;
      return writeThrough(options.outputFd!, chunk, output, socket, () => onOutputError());
    });
  if (!fast) {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      taps?.received?.(chunk);
      if (output && !output.write(chunk)) {
        socket.pause();
        output.once('drain', () => socket.resume());
      }
    });
  }
  socket.on('end', () => {
    peerEnded = true;
    finishIfDone();
  });
  socket.on('error', (error) => {
    failure ??= error;
  });
  const onOutputError = (): void => {
    // The reader of our output went away (`sockit connect … | head`): nobody wants more bytes.
    pump?.stop();
    peerEnded = true;
    socket.destroy();
  };
  output?.on('error', onOutputError);
  if (options.idleTimeoutMs) {
    const idleMs = options.idleTimeoutMs;
    socket.setTimeout(idleMs, () => {
      failure ??= new SockitError('TIMEOUT', `no traffic for ${idleMs} ms (-i); closed the connection`);
      pump?.stop();
      socket.destroy();
    });
  }

  if (input !== undefined) {
    pump = pumpInput(input, socket, (chunk) => {
      sent += chunk.length;
      taps?.sent?.(chunk);
    });
    pump.done.then(
      () => {
        inputEnded = true;
        if (shutdown && !socket.writableEnded && !socket.destroyed) socket.end();
        finishIfDone();
      },
      (error: Error) => {
        failure ??= fromSystemError(error, 'cannot read input');
        socket.destroy();
      },
    );
  }

  return new Promise<RelayResult>((resolve) => {
    socket.once('close', () => {
      pump?.stop();
      output?.off('error', onOutputError);
      resolve({ sent, received, error: classify(failure, peerEnded) });
    });
  });
}

/**
 * Writes a chunk that lives in the reused receive buffer before returning. A descriptor someone
 * made non-blocking may refuse part of it (EAGAIN): the rest is copied and written through the
 * stream, and the socket stays paused until that is done. False pauses the socket.
 */
function writeThrough(
  fd: number,
  chunk: Buffer,
  output: Writable,
  socket: Socket,
  fail: () => void,
): boolean {
  let offset = 0;
  try {
    while (offset < chunk.length) offset += writeSync(fd, chunk, offset, chunk.length - offset);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') {
      fail();
      return false;
    }
    output.write(Buffer.from(chunk.subarray(offset)), () => socket.resume());
    return false;
  }
}

function classify(error: Error | undefined, peerEnded: boolean): SockitError | undefined {
  if (error === undefined) return undefined;
  if (error instanceof SockitError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  // The peer said EOF and then closed hard: what it had to say arrived in full.
  if (peerEnded && (code === 'ECONNRESET' || code === 'EPIPE')) return undefined;
  return fromSystemError(error, 'connection failed');
}
