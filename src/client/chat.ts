import { EventEmitter } from 'node:events';
import { SockitError } from '../errors.js';
import type { HeaderOfType } from '../protocol/catalogue.js';
import type { Frame } from '../protocol/frame.js';
import type { Client } from './client.js';

export interface JoinChatOptions {
  name: string;
  /** Default `lobby`. */
  room?: string;
}

/** One chat message as it arrived. */
export interface ChatMessage {
  room: string;
  from: string;
  text: string;
  /** The raw bytes, for non-UTF-8 payloads. */
  body: Buffer;
}

/** A member joining or leaving; `reason` is set when the server dropped a lagging member. */
export interface ChatPresence {
  room: string;
  name: string;
  event: 'join' | 'leave';
  reason?: string;
}

/** A server notice about the room, e.g. `bus-down`/`bus-up` when its link to other servers goes and returns. */
export interface ChatNotice {
  room: string;
  event: string;
  text: string;
}

/**
 * The one set of listeners a client gets for all its rooms: `frame`, `close` and
 * `server-error` are each listened to once per client, and a frame finds its room by a Map
 * lookup. Listeners per room would be O(rooms) work per frame and trip Node's MaxListeners
 * warning at the eleventh room.
 */
class ChatDispatch {
  readonly #client: Client;
  readonly #rooms = new Map<string, ChatRoom>();
  readonly #onFrame = (frame: Frame): void => {
    const room = frame.header.room;
    if (typeof room === 'string') this.#rooms.get(room)?.deliver(frame);
  };
  readonly #onEnd = (reason: SockitError): void => {
    for (const room of [...this.#rooms.values()]) room.end(reason);
  };

  constructor(client: Client) {
    this.#client = client;
  }

  /** Starts routing the room's frames to `room`; a room already held (a second join, refused by the server) is left as it is. */
  add(room: ChatRoom): void {
    if (this.#rooms.has(room.room)) return;
    if (this.#rooms.size === 0) {
      this.#client.on('frame', this.#onFrame);
      this.#client.on('close', this.#onEnd);
      this.#client.on('server-error', this.#onEnd);
    }
    this.#rooms.set(room.room, room);
  }

  /** Stops routing to `room`; the last room out removes the client listeners. */
  remove(room: ChatRoom): void {
    if (this.#rooms.get(room.room) !== room) return;
    this.#rooms.delete(room.room);
    if (this.#rooms.size === 0) {
      this.#client.off('frame', this.#onFrame);
      this.#client.off('close', this.#onEnd);
      this.#client.off('server-error', this.#onEnd);
    }
  }
}

const dispatchers = new WeakMap<Client, ChatDispatch>();

function dispatchFor(client: Client): ChatDispatch {
  let dispatch = dispatchers.get(client);
  if (dispatch === undefined) {
    dispatch = new ChatDispatch(client);
    dispatchers.set(client, dispatch);
  }
  return dispatch;
}

/**
 * Membership in one chat room. Events: `message` (ChatMessage, your own included, in the order
 * the server fanned them out), `presence` (ChatPresence), `notice` (ChatNotice), `close`
 * (SockitError: the connection ended or the server dropped this member).
 */
export class ChatRoom extends EventEmitter {
  readonly client: Client;
  readonly room: string;
  readonly name: string;
  /** Who is in the room, kept current from `joined` and presence events. */
  readonly members: Set<string>;
  #left = false;
  /** Frames that arrived before the caller could attach listeners; see `joinChat`. */
  #backlog: Frame[] | undefined = [];
  readonly #dispatch: ChatDispatch;

  /** Use `joinChat()` or `client.chat()`. */
  constructor(client: Client, init: { room: string; name: string }) {
    super();
    this.client = client;
    this.room = init.room;
    this.name = init.name;
    this.members = new Set();
    this.#dispatch = dispatchFor(client);
    this.#dispatch.add(this);
  }

  /** Sends a message to everyone in the room. False: wait for `client.drained()` before the next. */
  say(text: string | Uint8Array): boolean {
    if (this.#left) throw new SockitError('CLOSED', `already left room "${this.room}"`);
    const body = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    return this.client.send({ type: 'say', room: this.room, size: body.length }, body);
  }

  /** Leaves the room (the connection stays open for other rooms and requests). */
  async leave(): Promise<void> {
    if (this.#left) return;
    await this.client.call({ type: 'leave', room: this.room });
    this.#detach();
  }

  /** Internal: the join answered; deliver the backlog once the caller had a tick to listen. */
  joined(members: string[]): void {
    // The server lists members in join order, this member included.
    for (const member of members.length > 0 ? members : [this.name]) this.members.add(member);
    setImmediate(() => {
      const backlog = this.#backlog ?? [];
      this.#backlog = undefined;
      for (const frame of backlog) this.#receive(frame);
    });
  }

  /** Internal: the join failed. */
  abandon(): void {
    this.#detach();
  }

  /** Internal (ChatDispatch): a frame for this room. */
  deliver(frame: Frame): void {
    if (this.#backlog) this.#backlog.push(frame);
    else this.#receive(frame);
  }

  /** Internal (ChatDispatch): the connection closed or failed; the membership ends. */
  end(reason: SockitError): void {
    if (this.#left) return;
    this.#detach();
    this.emit('close', reason);
  }

  /** A frame of this room; the client checked it against the catalogue before it got here. */
  #receive(frame: Frame): void {
    if (this.#left) return;
    const header = frame.header as HeaderOfType<'message' | 'presence' | 'notice'>;
    if (header.type === 'message') {
      this.emit('message', {
        room: this.room,
        from: header.from,
        text: frame.body.toString('utf8'),
        body: frame.body,
      });
    } else if (header.type === 'presence') {
      const { name, event } = header;
      if (event === 'join') this.members.add(name);
      else this.members.delete(name);
      const presence: ChatPresence = { room: this.room, name, event };
      if (header.reason !== undefined) presence.reason = header.reason;
      this.emit('presence', presence);
    } else if (header.type === 'notice') {
      const notice: ChatNotice = { room: this.room, event: header.event, text: header.text };
      this.emit('notice', notice);
    }
  }

  #detach(): void {
    this.#left = true;
    this.#dispatch.remove(this);
  }
}

/**
 * Joins a room under a name; rejects with CONFLICT when the name is taken there. Attach
 * listeners right after it resolves: events that arrived with the answer are delivered on the
 * next turn of the event loop, in order.
 */
export async function joinChat(client: Client, options: JoinChatOptions): Promise<ChatRoom> {
  const room = options.room ?? 'lobby';
  // Listening starts before the request: messages may follow `joined` in the same read.
  const chat = new ChatRoom(client, { room, name: options.name });
  let reply: Frame;
  try {
    reply = await client.call({ type: 'join', room, name: options.name });
  } catch (error) {
    chat.abandon();
    throw error;
  }
  chat.joined((reply.header as HeaderOfType<'joined'>).members);
  return chat;
}
