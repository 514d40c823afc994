/**
 * Dead-peer detection for one connection, the same at both ends (like ssh's
 * ServerAliveInterval/ServerAliveCountMax): when nothing has arrived for `intervalMs`, send a
 * `ping`; after `count` pings without anything arriving (INTERVAL × (count + 1) of silence)
 * the peer is gone. Any bytes from the peer count as an answer, so a busy connection never
 * pings. TCP keepalive is switched on as well, for the kernel's own (much slower) check.
 *
 * While this end has paused reading (backpressure: a slow local consumer), the peer's answers
 * wait unread, so silence proves nothing: this end then only sends a ping every interval, so
 * the peer in turn sees it alive. Data never re-arms a timer: one interval per connection
 * looks at a byte counter a few times per interval.
 */
import type { Socket } from 'node:net';
import { invalidOption } from '../errors.js';

/** Keepalive settings; `intervalMs` 0 turns it off. */
export interface KeepaliveSettings {
  /** Quiet time before a ping, ms. Default 15 s; 0 = off. */
  intervalMs: number;
  /** Unanswered pings before the peer counts as gone. Default 3. */
  count: number;
}

/** The defaults of both ends: 15 s, 3 pings (a vanished peer is noticed within 60 s). */
export const KEEPALIVE_DEFAULTS: Readonly<KeepaliveSettings> = Object.freeze({
  intervalMs: 15_000,
  count: 3,
});

/** Settings from options, defaults filled in; a bad value is INVALID_OPTION naming its option. */
export function resolveKeepalive(
  intervalMs: number | undefined,
  count: number | undefined,
): KeepaliveSettings {
  const settings = {
    intervalMs: intervalMs ?? KEEPALIVE_DEFAULTS.intervalMs,
    count: count ?? KEEPALIVE_DEFAULTS.count,
  };
  if (!Number.isSafeInteger(settings.intervalMs) || settings.intervalMs < 0) {
    throw invalidOption(`option keepaliveMs must be a whole number of ms >= 0, got ${String(intervalMs)}`);
  }
  if (!Number.isSafeInteger(settings.count) || settings.count < 1) {
    throw invalidOption(`option keepaliveCount must be an integer >= 1, got ${String(count)}`);
  }
  return settings;
}

/** Checks per interval: silence is measured to a quarter of the interval. */
const TICKS_PER_INTERVAL = 4;

/** A running keepalive; `stop()` it when the connection closes (it also stops by itself then). */
export interface Keepalive {
  stop(): void;
}

/**
 * Watches `socket`: `ping()` sends one ping frame, `onDead(silentMs)` is called once when the
 * peer stopped answering (the caller destroys the connection).
 */
export function watchKeepalive(
  socket: Socket,
  settings: KeepaliveSettings,
  ping: () => void,
  onDead: (silentMs: number) => void,
): Keepalive {
  if (settings.intervalMs <= 0) return { stop() {} };
  socket.setKeepAlive(true, settings.intervalMs);
  const tickMs = Math.max(1, Math.floor(settings.intervalMs / TICKS_PER_INTERVAL));
  let received = 0;
  let seen = 0;
  let lastHeard = performance.now();
  let pings = 0;
  let lastPausedPing = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
  };
  socket.on('data', onData);
  const timer = setInterval(() => {
    const now = performance.now();
    if (received !== seen) {
      seen = received;
      lastHeard = now;
      pings = 0;
      return;
    }
    if (socket.isPaused()) {
      // Our own backpressure: answers may be waiting unread. Show the peer we are here.
      lastHeard = now;
      pings = 0;
      if (now - lastPausedPing >= settings.intervalMs) {
        lastPausedPing = now;
        ping();
      }
      return;
    }
    const silent = now - lastHeard;
    // The last tick before the deadline decides: the peer had one interval after the last ping.
    if (pings >= settings.count && silent >= (settings.count + 1) * settings.intervalMs - tickMs) {
      stop();
      onDead(Math.round(silent));
      return;
    }
    if (pings < settings.count && silent >= (pings + 1) * settings.intervalMs - tickMs / 2) {
      pings++;
      ping();
    }
  }, tickMs);
  // Never what keeps a process alive: the socket is.
  timer.unref();
  const stop = (): void => {
    clearInterval(timer);
    socket.off('data', onData);
    socket.off('close', stop);
  };
  socket.once('close', stop);
  return { stop };
}

/** `--keepalive` in words for messages: `3 pings 15000 ms apart`. */
export function describeKeepalive(settings: KeepaliveSettings): string {
  return `${settings.count} ping${settings.count === 1 ? '' : 's'} ${settings.intervalMs} ms apart`;
}
