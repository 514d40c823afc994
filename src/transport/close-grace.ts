import type { Socket } from 'node:net';

/** How long a peer has to close its side after we ended ours, before the socket is destroyed. */
export const CLOSE_GRACE_MS = 5000;

/**
 * What a peer may still send after we ended our side before its socket is destroyed at once:
 * enough for frames already in flight, not a free drain of a 16 MiB body nobody will read.
 */
export const DISCARD_LIMIT_BYTES = 256 * 1024;

/**
 * Ends our side of `socket` (after `chunk`, if given) and destroys it when `graceMs` have passed,
 * counted from now. The peer's bytes are read and dropped so its FIN is seen, but they never move
 * the deadline: a peer that keeps its end open, or keeps sending, cannot hold the descriptor; one
 * that sends more than DISCARD_LIMIT_BYTES after our end is destroyed then.
 */
export function endWithin(socket: Socket, graceMs: number = CLOSE_GRACE_MS, chunk?: string | Buffer): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded) {
    if (chunk === undefined) socket.end();
    else socket.end(chunk);
  }
  if (!discarding.has(socket)) {
    discarding.add(socket);
    let dropped = 0;
    socket.on('data', (bytes: Buffer) => {
      dropped += bytes.length;
      if (dropped > DISCARD_LIMIT_BYTES) socket.destroy();
    });
  }
  destroyAfter(socket, graceMs);
  socket.resume();
}

const discarding = new WeakSet<Socket>();

/**
 * Destroys `socket` `ms` from now unless it closes first. A fixed timer, not `socket.setTimeout`
 * (which every read and write re-arms). Of several calls, the earliest deadline wins.
 */
export function destroyAfter(socket: Socket, ms: number): void {
  if (socket.destroyed) return;
  const at = Date.now() + ms;
  const earlier = deadlines.get(socket);
  if (earlier !== undefined) {
    if (earlier.at <= at) return;
    clearTimeout(earlier.timer);
  } else {
    socket.once('close', () => {
      clearTimeout(deadlines.get(socket)?.timer);
      deadlines.delete(socket);
    });
  }
  deadlines.set(socket, { at, timer: setTimeout(() => socket.destroy(), ms) });
}

const deadlines = new WeakMap<Socket, { at: number; timer: NodeJS.Timeout }>();
