import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { loadNative } from '../native.js';

/** `native/splice.c`: relay directions on Node's loop, declared once for both of its ways. */
export interface RelayAddon {
  /** A kernel splice through a pipe (raw/splice-relay.ts, forward's relays). */
  start(srcFd: number, dstFd: number, onDone: (error: string | null, bytes: number) => void): object;
  /** A copy through a buffer, read and written in the poll callback (copyDescriptor below). */
  startCopy(
    srcFd: number,
    dstFd: number,
    onDone: (error: string | null, bytes: number) => void,
    limit?: number,
  ): object;
  stop(handle: object): void;
  moved(handle: object): number;
}

/** The addon, or null where it is not built (not Linux) or SOCKIT_NO_NATIVE is set. */
export const relayAddon = (): RelayAddon | null => loadNative<RelayAddon>('sockit_splice');

/**
 * Whether descriptors can be copied in C here (Linux, the addon built): a terminal's data
 * channel needs it at both ends; without it the bytes stay in frames.
 */
export function canRelayDescriptors(): boolean {
  return relayAddon() !== null;
}

/** One direction the addon moves (copyDescriptor's copy, splice-relay's splice). */
export interface RelayedDirection {
  /** Bytes moved so far. */
  moved(): number;
  /** Ends it at once; `onDone` is not called. Its duplicates of the descriptors are closed. */
  stop(): void;
}

/**
 * Copies `srcFd` to `dstFd` on Node's loop, read and written in the poll callback itself with
 * no JavaScript per chunk: a keystroke or its echo crosses the process in one wake-up, where a
 * stream costs a 'data' event, a write and their bookkeeping. Both descriptors are duplicated,
 * so the caller keeps its own, but must neither read `srcFd` nor write `dstFd` meanwhile (Node's
 * socket paused). `onDone(undefined, bytes)` at the source's end of file (a pty master's EIO
 * included) once every byte is out; `onDone(error)` on a failure (EPIPE, ECONNRESET; EFBIG
 * once `limit` bytes moved). The destination is not ended: the caller does that. Throws an
 * ErrnoException without the addon, or when a descriptor cannot be polled (a regular file).
 */
export function copyDescriptor(
  srcFd: number,
  dstFd: number,
  onDone: (error: NodeJS.ErrnoException | undefined, bytes: number) => void,
  limit?: number,
): RelayedDirection {
  const native = relayAddon();
  if (native === null) {
    throw Object.assign(new Error('descriptor copies need the native addon'), { code: 'ENOSYS' });
  }
  let stopped = false;
  const handle = native.startCopy(
    srcFd,
    dstFd,
    (code, bytes) => {
      stopped = true;
      onDone(code === null ? undefined : Object.assign(new Error(`copy: ${code}`), { code }), bytes);
    },
    limit,
  );
  return {
    moved: () => Math.max(0, native.moved(handle)),
    stop: () => {
      if (stopped) return;
      stopped = true;
      native.stop(handle);
    },
  };
}

/** What of a net.Socket's libuv handle the takeover below touches. */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

/** The descriptor behind a plain net.Socket (`_handle.fd`), or -1 when it has none. */
export function descriptorOf(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: StreamHandle })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

/**
 * Stops Node reading `socket` for good, so that something else (a copy, a splice) can read its
 * descriptor without racing it: `pause()` alone only stops 'data' events, and Node goes on
 * reading into the socket's buffer up to its high-water mark. Returns the bytes Node had read and
 * not handed out yet: they come before anything read from the descriptor. Writes go on as before.
 */
export function stopReading(socket: Socket): Buffer {
  const handle = (socket as unknown as { _handle?: StreamHandle })._handle;
  // Readable calls `_read()` again by itself (maybeReadMore, on the next tick): a no-op now.
  socket._read = () => {};
  if (handle) {
    handle.reading = false;
    handle.readStop?.();
  }
  socket.pause();
  stopped.add(socket);
  // Duplex's own read: net.Socket's starts reading again when the socket reads into buffers of
  // its owner's (transport/reused-buffer.ts), where nothing is buffered anyway.
  const read = (): Buffer | null => Duplex.prototype.read.call(socket) as Buffer | null;
  const buffered: Buffer[] = [];
  for (let chunk = read(); chunk !== null; chunk = read()) buffered.push(chunk);
  return Buffer.concat(buffered);
}

const stopped = new WeakSet<Socket>();

/**
 * Lets Node read a socket stopReading() took over again, once nothing else reads its descriptor
 * (the copies stopped): to see the peer's FIN and close, or to read what is left in JavaScript.
 */
export function resumeReading(socket: Socket): void {
  if (!stopped.delete(socket)) return;
  const internals = socket as unknown as { _read?: unknown; _readableState: { reading: boolean } };
  delete internals._read; // the prototype's again
  // Readable still waits for the no-op read it was given last: without this it never asks again.
  internals._readableState.reading = false;
  socket.resume();
}
