import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { RelayedDirection } from '../transport/descriptor-relay.js';
import { readIntoReusedBuffer } from '../transport/reused-buffer.js';
import { borrowRelayBuffer, RELAY_BULK_BYTES, returnRelayBuffer } from './relay-buffers.js';
import { spliceDirection } from './splice-relay.js';

/**
 * Where one direction of a relay writes: the destination socket itself, or something in front of
 * it (a chaos link) with the same write/end/drain contract as a Writable.
 */
export interface RelaySink {
  /** False asks the writer to wait for 'drain' (backpressure). */
  write(chunk: Buffer): boolean;
  /** The source ended: carry its FIN on (half-close). */
  end(): void;
  once(event: 'drain', listener: () => void): unknown;
}

/** How a relay ended: both directions done, idle, aborted, or one side failed. */
export type RelayEnd = 'done' | 'idle' | 'aborted' | 'error';

export interface SocketRelayOptions {
  /** Close both sockets after this long without a byte in either direction. 0 or undefined: never. */
  idleTimeoutMs?: number | undefined;
  /** Aborting stops the relay at once (a forced shutdown). */
  signal?: AbortSignal | undefined;
  /** Replaces the plain write into `b` (client → target): a chaos link. */
  upstream?: RelaySink | undefined;
  /** Replaces the plain write into `a` (target → client). */
  downstream?: RelaySink | undefined;
  /** Time both sockets get to close after the relay is over, before they are destroyed. */
  closeGraceMs?: number;
  /**
   * Let the kernel move a bulk direction between two plain sockets (splice, `native/splice.c`)
   * where it can. Default true; false copies through this process (tests compare both paths).
   */
  kernelSplice?: boolean;
}

export interface SocketRelayResult {
  /** Bytes read from `a` (client → target). */
  up: number;
  /** Bytes read from `b` (target → client). */
  down: number;
  ms: number;
  end: RelayEnd;
  /** The first socket error, for the log line (a reset after both sides ended is not one). */
  error: Error | undefined;
  /** Whether the kernel moved a direction (splice) once it proved bulk. */
  spliced: boolean;
}

const DEFAULT_CLOSE_GRACE_MS = 5000;

/**
 * Joins two stream sockets, as socat does for two addresses, but with the half-close carried
 * faithfully: each side's FIN is passed on as a FIN (`end()`) and the other direction keeps
 * flowing until it ends too, however long that takes (socat gives it `-t` 0.5 s).
 *
 * Backpressure both ways: a direction whose destination is full pauses its source, so memory
 * stays bounded by the sockets' own buffers whatever the speeds. An error on either socket
 * destroys both. Resolves once both sockets are closed; after the relay is over a peer that
 * does not close is destroyed after `closeGraceMs`.
 *
 * A direction between plain sockets that has carried `RELAY_BULK_BYTES` is moved by the kernel
 * from then on (`spliceDirection`), or, where it cannot be, through a reused buffer.
 */
export function relaySockets(
  a: Socket,
  b: Socket,
  options: SocketRelayOptions = {},
): Promise<SocketRelayResult> {
  const started = performance.now();
  a.allowHalfOpen = true;
  b.allowHalfOpen = true;
  let up = 0;
  let down = 0;
  let end: RelayEnd = 'done';
  let error: Error | undefined;
  let endsSeen = 0;
  /** Reused read buffers this relay's directions took: given back once both sockets closed. */
  const borrowed: Buffer[] = [];
  /** Directions the kernel moves now, with how to count their bytes when they stop. */
  const spliced = new Map<RelayedDirection, (n: number) => void>();
  let everSpliced = false;

  const stopSpliced = (): void => {
    // Before the sockets close: the splices hold duplicates of their descriptors open.
    for (const [direction, count] of spliced) {
      count(direction.moved());
      direction.stop();
    }
    spliced.clear();
  };
  const stopBoth = (why: RelayEnd, cause?: Error): void => {
    if (end === 'done' && why !== 'done') end = why;
    if (cause && error === undefined && !(endsSeen === 2 && isResetLike(cause))) error = cause;
    stopSpliced();
    a.destroy();
    b.destroy();
  };
  // Node saw no EOF on a spliced source, so it does not close that socket by itself: once both
  // directions ended and both sockets finished writing, the relay closes them.
  const closeIfSplicedAndDone = (): void => {
    if (!everSpliced || endsSeen < 2) return;
    for (const socket of [a, b]) {
      if (!socket.destroyed && !socket.writableFinished) {
        socket.once('finish', closeIfSplicedAndDone);
        return;
      }
    }
    a.destroy();
    b.destroy();
  };
  const pipe = (from: Socket, to: Socket, sink: RelaySink, count: (n: number) => void): void => {
    const resume = (): void => {
      from.resume();
    };
    // A plain socket into a plain socket, once it proves bulk, goes to the kernel (splice) or,
    // where that cannot be, to a reused read buffer; short exchanges never pay for either.
    let untilBulk =
      sink === to && !(from instanceof tls.TLSSocket || to instanceof tls.TLSSocket)
        ? RELAY_BULK_BYTES
        : Number.POSITIVE_INFINITY;
    let trySplice = options.kernelSplice !== false;
    const onData = (chunk: Buffer): void => {
      count(chunk.length);
      if (!sink.write(chunk)) {
        from.pause();
        sink.once('drain', resume);
        return;
      }
      untilBulk -= chunk.length;
      if (untilBulk > 0) return;
      if (trySplice) {
        const direction = spliceDirection(from, to, (cause, bytes) => {
          spliced.delete(direction as RelayedDirection);
          count(bytes);
          if (cause) {
            stopBoth('error', cause);
            return;
          }
          endsSeen++;
          if (!to.destroyed) to.end();
          closeIfSplicedAndDone();
        });
        if (direction === 'later') return; // bytes buffered on a side: the next chunk tries again
        if (direction !== 'never') {
          from.off('data', onData);
          spliced.set(direction, count);
          everSpliced = true;
          return;
        }
        trySplice = false; // the copy through a reused buffer, then
      }
      untilBulk = Number.POSITIVE_INFINITY; // one try per direction
      const buffer = borrowRelayBuffer();
      if (buffer === undefined) return;
      from.off('data', onData);
      if (relayThroughReusedBuffer(from, to, buffer, count, resume)) {
        borrowed.push(buffer);
      } else {
        returnRelayBuffer(buffer);
        from.on('data', onData);
      }
    };
    from.on('data', onData);
    const onEnd = (): void => {
      endsSeen++;
      if (!to.destroyed) sink.end();
      closeIfSplicedAndDone();
    };
    // A client that sent nothing and its FIN while the target was dialled: Node read the EOF and
    // emitted 'end' already (no bytes were waiting), so there is no 'end' left to wait for.
    if (from.readableEnded) process.nextTick(onEnd);
    else from.once('end', onEnd);
    from.on('error', (cause: Error) => stopBoth('error', cause));
  };
  pipe(a, b, options.upstream ?? b, (n) => {
    up += n;
  });
  pipe(b, a, options.downstream ?? a, (n) => {
    down += n;
  });

  let idleTimer: NodeJS.Timeout | undefined;
  const idleMs = options.idleTimeoutMs ?? 0;
  if (idleMs > 0) {
    // One timer checked against a moving total: data never re-arms a timer, it only moves the mark.
    let seen = -1;
    const check = (): void => {
      let total = up + down;
      for (const direction of spliced.keys()) total += direction.moved();
      if (total === seen) {
        stopBoth('idle');
        return;
      }
      seen = total;
      idleTimer = setTimeout(check, idleMs);
    };
    check();
  }
  const onAbort = (): void => stopBoth('aborted');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const grace = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  let graceTimer: NodeJS.Timeout | undefined;
  let aClosed = false;
  let bClosed = false;
  return new Promise((resolve) => {
    // One promise and one 'close' listener per socket: a forwarder runs this per client.
    const onClose = (socket: Socket): void => {
      if (socket === a ? aClosed : bClosed) return;
      if (socket === a) aClosed = true;
      else bClosed = true;
      stopSpliced();
      if (!(aClosed && bClosed)) {
        // Once either side is fully closed the other gets `grace` to finish, then it is destroyed.
        const other = socket === a ? b : a;
        if (!other.destroyed) {
          graceTimer = setTimeout(() => other.destroy(), grace);
          graceTimer.unref();
        }
        return;
      }
      for (const buffer of borrowed) returnRelayBuffer(buffer);
      // Cleared, not left to fire on a closed socket: thousands of short connections a second
      // would otherwise keep thousands of timers (and their sockets) alive for `grace`.
      clearTimeout(graceTimer);
      clearTimeout(idleTimer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ up, down, ms: Math.round(performance.now() - started), end, error, spliced: everSpliced });
    };
    a.once('close', () => onClose(a));
    b.once('close', () => onClose(b));
    if (a.destroyed && !a.connecting) onClose(a);
    if (b.destroyed && !b.connecting) onClose(b);
  });
}

/**
 * The fast path between two plain sockets: `from` reads into one reused buffer and each read is
 * written to `to` at once. A relay that gets a fresh Buffer per read spends about a third more
 * CPU per GiB (allocation, page faults, garbage collection). Most writes reach the kernel before
 * `write()` returns; a write that could not (the destination's buffer is full) still points into
 * the buffer, so `from` stops reading until that write is done, which is also the backpressure.
 * A TLS socket on either side keeps the 'data' path: its reads are decrypted copies and its
 * writes finish later.
 */
function relayThroughReusedBuffer(
  from: Socket,
  to: Socket,
  buffer: Buffer,
  count: (n: number) => void,
  resume: () => void,
): boolean {
  return readIntoReusedBuffer(from, buffer, (chunk) => {
    count(chunk.length);
    if (to.destroyed) return true; // the relay is over; the reads only wait for 'end'
    to.write(chunk, resume);
    if (to.writableLength === 0) return true;
    from.pause(); // as the 'data' path does: 'pause' is emitted, `resume` undoes it
    return false;
  });
}

function isResetLike(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** `up 5 B, down 12 B, 3 ms` and how it ended when that was not both sides closing. */
export function describeResult(result: Omit<SocketRelayResult, 'spliced'>): string {
  const parts = [`up ${result.up} B, down ${result.down} B, ${result.ms} ms`];
  if (result.end === 'idle') parts.push('closed: idle (-i)');
  else if (result.end === 'aborted') parts.push('closed: shutting down');
  if (result.error) parts.push(`error: ${result.error.message}`);
  return parts.join(', ');
}
