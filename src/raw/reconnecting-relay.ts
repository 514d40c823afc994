import type { Socket } from 'node:net';
import { fromSystemError, type SockitError } from '../errors.js';
import { Backoff, type RetryInfo, retry } from '../transport/backoff.js';
import type { Taps } from './session-log.js';

/** Bytes typed while disconnected that are kept for the next connection; then input pauses. */
export const RECONNECT_QUEUE_BYTES = 64 * 1024;

/** `sockit connect --reconnect`: one stdin/stdout session over a connection that is replaced when it drops. */
export interface ReconnectingRelayOptions {
  /** Opens a new connection (the same address, TLS trust and proxy each time). */
  dial: () => Promise<Socket>;
  /** What to send; undefined with --recv-only. */
  input: NodeJS.ReadableStream | undefined;
  /** Where received bytes go; undefined with --send-only. */
  output: NodeJS.WritableStream | undefined;
  /** Input EOF shuts down the write side (and the session ends with that connection). */
  shutdown: boolean;
  /** Give up after this many failed attempts in a row. Default: never. */
  maxAttempts?: number | undefined;
  /** Bytes kept while disconnected. Default RECONNECT_QUEUE_BYTES. */
  queueLimit?: number;
  backoff?: Backoff;
  taps?: Taps | undefined;
  /** One stderr line: a drop, each wait, a reconnect, a full queue. */
  say: (line: string) => void;
  onRetry: (info: RetryInfo) => void;
}

/** Counts of the whole session, across connections; `error` is why it ended, if it failed. */
export interface ReconnectingResult {
  sent: number;
  received: number;
  connections: number;
  error?: SockitError;
}

/**
 * Relays input to the current connection and the connection to output. When the connection
 * drops (the peer closed, reset, or vanished) a new one is dialled with backoff; input read
 * meanwhile is queued up to `queueLimit` bytes and sent first on the new connection, after
 * which input is paused (nothing is dropped: a terminal or pipe holds the rest). Bytes written
 * to a connection just before it dropped may be lost with it; the stream carries no
 * acknowledgements to tell. After input EOF the session ends with the connection that carried
 * the end.
 */
export async function relayReconnecting(options: ReconnectingRelayOptions): Promise<ReconnectingResult> {
  const limit = options.queueLimit ?? RECONNECT_QUEUE_BYTES;
  const backoff = options.backoff ?? new Backoff();
  const result: ReconnectingResult = { sent: 0, received: 0, connections: 0 };
  let socket: Socket | undefined;
  let queue: Buffer[] = [];
  let queued = 0;
  let inputEnded = options.input === undefined;
  let saidFull = false;

  const input = options.input;
  const resumeInput = (): void => {
    if (input && !inputEnded && socket && queued === 0) input.resume();
  };
  input?.on('data', (data: Buffer | string) => {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    options.taps?.sent?.(chunk);
    if (socket) {
      result.sent += chunk.length;
      if (!socket.write(chunk)) {
        input.pause();
        socket.once('drain', resumeInput);
      }
      return;
    }
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= limit) {
      input.pause();
      if (!saidFull) options.say(`${queued} bytes queued for the next connection; input paused until then`);
      saidFull = true;
    }
  });
  input?.once('end', () => {
    inputEnded = true;
    if (socket && queued === 0 && options.shutdown) socket.end();
  });
  input?.on('error', () => {});

  for (;;) {
    try {
      socket = await retry(options.dial, {
        backoff,
        waitFirst: result.connections > 0,
        maxAttempts: options.maxAttempts,
        onRetry: options.onRetry,
      });
    } catch (error) {
      input?.pause();
      result.error = fromSystemError(error, 'cannot connect');
      return result;
    }
    if (result.connections > 0) options.say('reconnected');
    result.connections++;
    const current = socket;
    const dropped = carry(current, options, result);
    // The queue goes first, in order, before anything read from now on.
    for (const chunk of queue) {
      result.sent += chunk.length;
      current.write(chunk);
    }
    queue = [];
    queued = 0;
    saidFull = false;
    if (inputEnded) {
      if (options.shutdown) current.end();
    } else input?.resume();
    const why = await dropped;
    socket = undefined;
    input?.pause();
    if (inputEnded) {
      if (why) result.error = why;
      return result;
    }
    options.say(`connection lost (${why?.message ?? 'the peer closed it'})`);
  }
}

/** Copies the connection's bytes to output until it closes; resolves with the error, if any. */
function carry(
  socket: Socket,
  options: ReconnectingRelayOptions,
  result: ReconnectingResult,
): Promise<SockitError | undefined> {
  return new Promise((resolve) => {
    let failure: SockitError | undefined;
    socket.on('data', (chunk: Buffer) => {
      result.received += chunk.length;
      options.taps?.received?.(chunk);
      if (options.output && !options.output.write(chunk)) {
        socket.pause();
        options.output.once('drain', () => socket.resume());
      }
    });
    // A peer that hangs up while we still type means the connection is gone, not half-closed.
    socket.once('end', () => socket.destroy());
    socket.once('error', (error) => {
      failure = fromSystemError(error, 'connection failed');
    });
    socket.once('close', () => resolve(failure));
  });
}
