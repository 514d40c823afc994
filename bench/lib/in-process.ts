/**
 * The server core's own cost per echo request, with no sockets and no system calls: a
 * `ServerConnection` on a stand-in socket is fed pre-encoded request chunks and its replies are
 * counted and dropped. Measured in CPU time of this process, so other load on the machine
 * barely moves it; it isolates what the framing, dispatch and request code cost per message.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { silentLogger } from '../../src/log.js';
import { PROTOCOL_VERSION } from '../../src/protocol/auth.js';
import { encodeFrameToBuffer } from '../../src/protocol/frame.js';
import { ServerConnection } from '../../src/server/connection.js';
import { resolveLimits } from '../../src/server/limits.js';
import { buildDispatch } from '../../src/server/server.js';
import { type EchoTransform, echoService } from '../../src/services/echo.js';

/** Just enough of a net.Socket for ServerConnection/FramedSocket; writes are counted, not sent. */
class StandInSocket extends EventEmitter {
  destroyed = false;
  writable = true;
  writableNeedDrain = false;
  writableLength = 0;
  writableHighWaterMark = 16 * 1024;
  written = 0;
  setNoDelay(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  end(): this {
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
  write(chunk: Uint8Array): boolean {
    this.written += chunk.byteLength;
    return true;
  }
}

/**
 * CPU nanoseconds per echo request through a server connection, `perChunk` requests arriving
 * in each chunk (1 is ping-pong, more is pipelining). The best of five windows after a warm-up.
 */
export async function serverPathNanos(
  perChunk: number,
  bodyBytes: number,
  windowMs: number,
  transform: EchoTransform = 'none',
): Promise<number> {
  const dispatch = buildDispatch([echoService({ transform })], undefined, ['echo'], false);
  const socket = new StandInSocket();
  new ServerConnection(
    socket as unknown as Socket,
    { id: 1, peer: 'bench', dispatch, limits: resolveLimits(), log: silentLogger },
    () => {},
  );
  socket.emit(
    'data',
    encodeFrameToBuffer({ type: 'hello', version: PROTOCOL_VERSION, client: 'sockit-bench' }),
  );
  const body = Buffer.alloc(bodyBytes, 0x61);
  const chunk = Buffer.concat(
    Array.from({ length: perChunk }, (_, i) => encodeFrameToBuffer({ type: 'echo', id: i + 1 }, body)),
  );
  const window = (ms: number): number => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    let requests = 0;
    while (performance.now() - start < ms) {
      for (let i = 0; i < 64; i++) socket.emit('data', chunk);
      requests += 64 * perChunk;
    }
    const used = process.cpuUsage(cpu);
    return ((used.user + used.system) * 1000) / requests;
  };
  const before = socket.written;
  window(windowMs);
  if (socket.written === before) throw new Error('the stand-in connection sent no replies');
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    // Let timers and GC run between windows, as the event loop would.
    await new Promise((resolve) => setImmediate(resolve));
    best = Math.min(best, window(windowMs / 2));
  }
  return best;
}
