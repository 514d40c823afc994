import type { Socket } from 'node:net';
import type { RawConnection, RawHandler } from '../server/raw-server.js';
import { FanOut } from './fan-out.js';
import type { Taps } from './session-log.js';

export interface BrokerOptions {
  /** A member that drains nothing for this long is dropped. Default 10 s. */
  stallTimeoutMs?: number;
  /** One-line notices (joins, leaves, drops) for `-v`. */
  notice?: (text: string) => void;
  taps?: (peer: string) => Taps | undefined;
}

/** The running broker: its handler for `serveRaw`, and how many members it has. */
export interface Broker extends RawHandler {
  readonly size: number;
}

/**
 * `--broker`: every byte a client sends goes to every other client, unchanged and in order per
 * sender. One Buffer is queued on every member's socket, never copied per member. A member that
 * reads slowly pauses the senders (backpressure) until it drains; one that stalls past
 * `stallTimeoutMs` is dropped so the rest go on. A client's EOF ends its membership.
 */
export function createBroker(options: BrokerOptions = {}): Broker {
  const peers = new Map<Socket, string>();
  const fanOut = new FanOut({
    stallTimeoutMs: options.stallTimeoutMs ?? 10_000,
    onDrop: (socket) => options.notice?.(`dropped ${peers.get(socket) ?? 'a client'}: it stopped reading`),
  });
  return {
    get size() {
      return fanOut.size;
    },
    handle(connection: RawConnection) {
      const { socket, peer } = connection;
      socket.setNoDelay(true);
      const taps = options.taps?.(peer);
      peers.set(socket, peer);
      fanOut.add(socket);
      options.notice?.(`${peer} joined the broker (${fanOut.size} connected)`);
      return new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          taps?.received?.(chunk);
          const congested = fanOut.send(chunk, socket);
          if (congested) {
            socket.pause();
            congested.then(() => socket.resume());
          }
        });
        const leave = (): void => {
          if (!peers.delete(socket)) return;
          fanOut.delete(socket);
          options.notice?.(`${peer} left the broker (${fanOut.size} connected)`);
          resolve();
        };
        socket.once('end', leave);
        socket.once('close', leave);
      });
    },
  };
}
