import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import type { FrameHeader } from '../protocol/frame.js';
import { describeKeepalive, type KeepaliveSettings, watchKeepalive } from '../transport/keepalive.js';

/**
 * The server's end of keepalive (transport/keepalive.ts), for a client that said in `hello`
 * that it answers pings: `{"type":"ping","id":N}` from the server, `pong` back. A client that
 * stops answering is dropped with `destroy`, which aborts its requests: exec kills their
 * process groups, chat removes the member.
 */
export function watchClient(
  socket: Socket,
  settings: KeepaliveSettings,
  connection: {
    readonly id: number;
    readonly peer: string;
    send(header: FrameHeader): boolean;
    destroy(reason: SockitError): void;
  },
  log: Logger,
): void {
  let nextId = 1;
  watchKeepalive(
    socket,
    settings,
    () => connection.send({ type: 'ping', id: nextId++ }),
    (silentMs) => {
      log.warn('client stopped answering: dropped', {
        connection: connection.id,
        peer: connection.peer,
        silentMs,
      });
      connection.destroy(
        new SockitError('CLOSED', `client stopped answering (${describeKeepalive(settings)} unanswered)`),
      );
    },
  );
}
