import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import { describeKeepalive, type KeepaliveSettings, watchKeepalive } from '../transport/keepalive.js';
import type { Client } from './client.js';

/**
 * The client's end of keepalive (transport/keepalive.ts): pings are ordinary `ping` requests,
 * and a server that stops answering ends the connection, so every open request (an exec, a
 * shell, a chat room) fails with CLOSED and a message that says why.
 */
export function startClientKeepalive(client: Client, socket: Socket, settings: KeepaliveSettings): void {
  watchKeepalive(
    socket,
    settings,
    () => {
      if (client.closed) return;
      // No deadline of its own: the keepalive decides when silence means the server is gone.
      client.open({ type: 'ping' }, undefined, { timeoutMs: 0, final: () => true }).done.catch(() => {});
    },
    (silentMs) =>
      client.destroy(
        new SockitError(
          'CLOSED',
          `the server stopped answering (nothing for ${silentMs} ms; ${describeKeepalive(settings)} unanswered)`,
        ),
      ),
  );
}
