import type { Socket } from 'node:net';
import type { Bus } from '../bus/bus.js';
import type { RawConnection, RawHandler } from '../server/raw-server.js';
import { FanOut } from './fan-out.js';
import type { Taps } from './session-log.js';

export interface BrokerOptions {
  /** A member that drains nothing for this long is dropped. Default 10 s. */
  stallTimeoutMs?: number;
  /** One-line notices (joins, leaves, drops) for `-v`. */
  notice?: (text: string) => void;
  taps?: (peer: string) => Taps | undefined;
  /** Share the broker with every server on this bus (`listen --broker --bus`). */
  bus?: Bus;
  /** With a bus: a member with more than this many bytes from other servers queued is dropped. Default 1 MiB. */
  maxQueueBytes?: number;
}

/** The running broker: its handler for `serveRaw`, and how many members it has. */
export interface Broker extends RawHandler {
  readonly size: number;
  /** Stops listening to the bus. */
  close(): void;
}

/** The bus subject of the raw broker: every server's clients' bytes. */
const BROKER_SUBJECT = 'raw.broker';

/**
 * `--broker`: every byte a client sends goes to every other client, unchanged and in order per
 * sender. One Buffer is queued on every member's socket, never copied per member. A member that
 * reads slowly pauses the senders (backpressure) until it drains; one that stalls past
 * `stallTimeoutMs` is dropped so the rest go on. A client's EOF ends its membership.
 *
 * With a bus, each chunk is also published to the other servers, which write it to their
 * members: order per sender holds, delivery across servers is at-most-once (see docs/scale.md),
 * and a remote sender cannot be paused, so a local member too far behind is dropped instead.
 */
export function createBroker(options: BrokerOptions = {}): Broker {
  const peers = new Map<Socket, string>();
  const fanOut = new FanOut({
    stallTimeoutMs: options.stallTimeoutMs ?? 10_000,
    onDrop: (socket) => options.notice?.(`dropped ${peers.get(socket) ?? 'a client'}: it stopped reading`),
  });
  const { bus } = options;
  const maxQueueBytes = options.maxQueueBytes ?? 1 << 20;
  const unsubscribe = bus?.subscribe(BROKER_SUBJECT, (payload) => fanOut.broadcast(payload, maxQueueBytes));
  return {
    get size() {
      return fanOut.size;
    },
    close() {
      unsubscribe?.();
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
          bus?.publish(BROKER_SUBJECT, chunk);
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
