import type { Socket } from 'node:net';
import type { Bus } from '../bus/bus.js';
import { memoryBus } from '../bus/memory.js';
import { Presence } from '../bus/presence.js';
import type { RawConnection, RawHandler } from '../server/raw-server.js';
import { FanOut } from './fan-out.js';

export interface LineChatOptions {
  /** A member that drains nothing for this long is dropped. Default 10 s. */
  stallTimeoutMs?: number;
  /** Longest line kept; a longer one is sent in pieces of this size. Default 16 KiB. */
  maxLineBytes?: number;
  notice?: (text: string) => void;
  /** Share the chat with every server on this bus (`listen --chat --bus`). Default: this process alone. */
  bus?: Bus;
  /** With a bus: a member with more than this many bytes from other servers queued is dropped. Default 1 MiB. */
  maxQueueBytes?: number;
}

/** The running line chat: its handler for `serveRaw`, and who is in it. */
export interface LineChat extends RawHandler {
  /** Members on this server. */
  readonly names: string[];
  /** Stops listening to the bus (and says goodbye on it). */
  close(): void;
}

/** The bus subject of the line chat, and its one room in the name registry. */
const CHAT_SUBJECT = 'raw.chat';
const ROOM = 'line';

interface Member {
  name: string;
  socket: Socket;
}

const NEWLINE = 0x0a;

/**
 * Replaces control bytes (except tab) with `?`, so nobody can move another member's cursor or
 * clear their screen with escape sequences; UTF-8 (bytes >= 0x80) passes unchanged.
 */
export function sanitizeLine(line: Uint8Array): Buffer {
  let end = line.length;
  if (end > 0 && line[end - 1] === 0x0d) end--; // CRLF clients (telnet)
  const out = Buffer.allocUnsafe(end);
  for (let i = 0; i < end; i++) {
    const byte = line[i]!;
    out[i] = (byte < 0x20 && byte !== 0x09) || byte === 0x7f ? 0x3f : byte;
  }
  return out;
}

/**
 * `--chat`: a line-oriented broker for people with plain clients (`nc`, `telnet`). Each member
 * gets a name (`user1`, `user2`, …); every complete line goes to the others as `<user1> text`,
 * and joins and leaves are announced with a leading `*`. Lines are assembled per member, so one
 * member's line is never interleaved with another's; order per sender is kept.
 *
 * With a bus every line and notice also goes to the other servers' members, and names are
 * claimed across servers (the first free `userN` everywhere); a server that dies is announced
 * as its members leaving once the bus notices (docs/scale.md).
 */
export function createLineChat(options: LineChatOptions = {}): LineChat {
  const maxLineBytes = options.maxLineBytes ?? 16 * 1024;
  const members = new Map<Socket, Member>();
  const fanOut = new FanOut({
    stallTimeoutMs: options.stallTimeoutMs ?? 10_000,
    onDrop: (socket) => {
      const member = members.get(socket);
      if (member) options.notice?.(`dropped ${member.name}: it stopped reading`);
    },
  });
  let nextNumber = 1;
  const bus = options.bus ?? memoryBus();
  const maxQueueBytes = options.maxQueueBytes ?? 1 << 20;
  const presence = new Presence(bus, 'line');
  const unsubscribe = bus.subscribe(CHAT_SUBJECT, (payload) => fanOut.broadcast(payload, maxQueueBytes));
  presence.onChange((change) => {
    // A remote member's own server announces its joins and leaves; only a vanished server cannot.
    if (change.event === 'leave' && change.reason) {
      fanOut.broadcast(Buffer.from(`* ${change.name} left (${change.reason})\n`), maxQueueBytes);
    }
  });

  /** Writes to every member here and publishes to the other servers. */
  const send = (message: Buffer, except?: Socket): Promise<void> | undefined => {
    bus.publish(CHAT_SUBJECT, message);
    return fanOut.send(message, except);
  };
  const announce = (text: string, except?: Socket): Promise<void> | undefined =>
    send(Buffer.from(`* ${text}\n`), except);

  /** The first `userN` no server on the bus holds. */
  const claimName = async (): Promise<string> => {
    for (;;) {
      const name = `user${nextNumber++}`;
      if (!presence.hasRemote(ROOM, name) && (await presence.claim(ROOM, name))) return name;
    }
  };

  return {
    get names() {
      return [...members.values()].map((member) => member.name);
    },
    close() {
      unsubscribe();
      presence.close();
    },
    async handle(connection: RawConnection) {
      const { socket } = connection;
      socket.setNoDelay(true);
      let name: string;
      try {
        name = await claimName();
      } catch (error) {
        socket.end(`* ${error instanceof Error ? error.message : String(error)}\n`);
        return;
      }
      if (socket.destroyed) {
        presence.unclaim(ROOM, name);
        return;
      }
      presence.add(ROOM, name);
      const member: Member = { name, socket };
      const others = [...members.values()].map((other) => other.name).concat(presence.remoteMembers(ROOM));
      socket.write(
        `* you are ${member.name}; ${others.length === 0 ? 'nobody else is here' : `also here: ${others.join(', ')}`}\n`,
      );
      announce(`${member.name} joined (${connection.peer})`);
      members.set(socket, member);
      fanOut.add(socket);
      options.notice?.(`${connection.peer} joined the chat as ${member.name}`);
      const prefix = Buffer.from(`<${member.name}> `);
      let partial: Buffer[] = [];
      let partialBytes = 0;

      const sendLine = (line: Uint8Array): Promise<void> | undefined => {
        const clean = sanitizeLine(line);
        const message = Buffer.allocUnsafe(prefix.length + clean.length + 1);
        prefix.copy(message, 0);
        clean.copy(message, prefix.length);
        message[message.length - 1] = NEWLINE;
        return send(message, socket); // one Buffer for every member
      };

      await new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          let congested: Promise<void>[] | undefined;
          const track = (pending: Promise<void> | undefined): void => {
            if (!pending) return;
            congested ??= [];
            congested.push(pending);
          };
          let start = 0;
          for (let index = chunk.indexOf(NEWLINE); index !== -1; index = chunk.indexOf(NEWLINE, start)) {
            const piece = chunk.subarray(start, index);
            if (partialBytes > 0) {
              track(sendLine(Buffer.concat([...partial, piece])));
              partial = [];
              partialBytes = 0;
            } else {
              track(sendLine(piece));
            }
            start = index + 1;
          }
          if (start < chunk.length) {
            partial.push(chunk.subarray(start));
            partialBytes += chunk.length - start;
            if (partialBytes >= maxLineBytes) {
              track(sendLine(Buffer.concat(partial)));
              partial = [];
              partialBytes = 0;
            }
          }
          if (congested) {
            socket.pause();
            Promise.all(congested).then(() => socket.resume());
          }
        });
        const leave = (): void => {
          if (!members.delete(socket)) return;
          fanOut.delete(socket);
          if (partialBytes > 0) sendLine(Buffer.concat(partial));
          announce(`${member.name} left`);
          presence.remove(ROOM, member.name);
          options.notice?.(`${member.name} (${connection.peer}) left the chat`);
          resolve();
        };
        socket.once('end', leave);
        socket.once('close', leave);
      });
    },
  };
}
