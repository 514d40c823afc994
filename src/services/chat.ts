import { type Bus, busToken } from '../bus/bus.js';
import { decodeEnvelope, encodeEnvelope } from '../bus/envelope.js';
import { memoryBus } from '../bus/memory.js';
import { Presence } from '../bus/presence.js';
import { SockitError } from '../errors.js';
import type { HeaderOfType } from '../protocol/catalogue.js';
import type { Frame } from '../protocol/frame.js';
import type { ServerRequest } from '../server/request.js';
import type { ConnectionContext, Service } from '../server/service.js';

export interface ChatOptions {
  /**
   * Bytes a member may have queued and unsent before it is dropped: the bound that keeps one
   * slow reader from holding memory or stalling the room. Default 1 MiB.
   */
  maxQueueBytes?: number;
  /** Largest `say` body. Default 64 KiB. */
  maxMessageBytes?: number;
  /**
   * What rooms are shared over: another server on the same bus sees the same rooms, names and
   * messages. Default: a private in-process bus (this server alone). The caller closes it.
   */
  bus?: Bus;
}

/** What members are told when the bus to the other servers goes and comes back. */
const BUS_NOTICES = {
  down: 'the link to the other servers is down: only members on this server hear you, and messages from the others are lost until it is back',
  up: 'the link to the other servers is back: members resynchronised, messages flow again',
} as const;

/** Rooms one connection may be in at once: enough for people, a bound for scripts. */
const MAX_ROOMS_PER_CONNECTION = 100;

interface Member {
  readonly name: string;
  readonly room: string;
  readonly connection: ConnectionContext;
}

/** Per-connection chat state: the rooms it joined and the hold that keeps it from idling out. */
interface Membership {
  readonly byRoom: Map<string, Member>;
  release: (() => void) | undefined;
}

/** The chat service plus a read-only view for tests and operators. */
export interface ChatService extends Service {
  /** Members of a room in join order (empty for an unknown room). */
  members(room: string): string[];
  /** Rooms with members on this server. */
  readonly roomCount: number;
  /** Memberships on this server, all rooms (one member in two rooms counts twice). */
  readonly memberCount: number;
  /** Messages handed to members here (one per receiving member), since start. */
  readonly deliveredCount: number;
  /**
   * Calls `listener` for every message another server published that arrived here, with the
   * time from its publish to its delivery to the members here, ms (wall clocks: on one machine
   * exact, across machines as good as their clock sync); returns the unsubscribe.
   */
  onBusMessage(listener: (lagMs: number) => void): () => void;
}

/**
 * Chat (PROTOCOL section 4): rooms, names unique per room (`CONFLICT`), join/leave presence, and
 * every `say` fanned out to all members, the sender included (its copy confirms the order).
 *
 * A slow member never stalls the others: messages are queued on each member's socket, and a
 * member whose queue passes `maxQueueBytes` is dropped with a `BUSY` connection error while the
 * rest of the room carries on. The body Buffer is shared by all members, never copied per member.
 *
 * Extension (documented in docs/chat.md): `{"type":"leave","id":N,"room":R}` → `{"type":"left","id":N}`.
 */
export function chatService(options: ChatOptions = {}): ChatService {
  const maxQueueBytes = options.maxQueueBytes ?? 1 << 20;
  const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024;
  const rooms = new Map<string, Map<string, Member>>();
  const stateKey = Symbol('chat');
  const bus = options.bus ?? memoryBus();
  const presence = new Presence(bus, 'chat');
  /** Names being claimed on the bus right now, `room\0name`: a second join waits for no one. */
  const pending = new Set<string>();
  /** Room → the unsubscribe of its bus subject, while this server has members there. */
  const subscriptions = new Map<string, () => void>();
  const subjectOf = (room: string): string => `chat.${busToken(room)}`;
  let delivered = 0;
  const busListeners = new Set<(lagMs: number) => void>();

  /** Messages other servers published to a room with members here. */
  const subscribe = (room: string): void => {
    if (subscriptions.has(room)) return;
    subscriptions.set(
      room,
      bus.subscribe(subjectOf(room), (payload) => {
        const envelope = decodeEnvelope(payload);
        const members = rooms.get(room);
        if (!envelope || !members || typeof envelope.header.f !== 'string') return;
        const header = { type: 'message', room, from: envelope.header.f };
        for (const member of [...members.values()]) deliver(member, header, envelope.body);
        delivered += members.size;
        const sentAt = envelope.header.t;
        if (typeof sentAt === 'number') for (const listener of busListeners) listener(Date.now() - sentAt);
      }),
    );
  };

  presence.onChange((change) => {
    const members = rooms.get(change.room);
    if (!members || members.has(change.name)) return;
    const header = {
      type: 'presence',
      room: change.room,
      name: change.name,
      event: change.event,
      ...(change.reason ? { reason: change.reason } : {}),
    };
    for (const member of [...members.values()]) deliver(member, header);
  });
  presence.onLost((room, name) => {
    const member = rooms.get(room)?.get(name);
    if (!member) return;
    remove(member, 'name taken on another server during a bus outage');
    member.connection.closeWithError(
      'CONFLICT',
      `while the link between servers was down another server gave the name "${name}" in room "${room}" to someone else; join again under another name`,
    );
  });
  const unwatchBus = bus.onState((state) => {
    for (const [room, members] of rooms) {
      const header = { type: 'notice', room, event: `bus-${state}`, text: BUS_NOTICES[state] };
      for (const member of [...members.values()]) deliver(member, header);
    }
  });

  const membershipOf = (connection: ConnectionContext): Membership => {
    let membership = connection.state.get(stateKey) as Membership | undefined;
    if (membership === undefined) {
      const created: Membership = { byRoom: new Map(), release: undefined };
      membership = created;
      connection.state.set(stateKey, created);
      connection.onClose(() => {
        for (const member of [...created.byRoom.values()]) remove(member);
      });
    }
    return membership;
  };

  const broadcastPresence = (room: string, name: string, event: 'join' | 'leave', reason?: string): void => {
    const members = rooms.get(room);
    if (!members) return;
    const header = { type: 'presence', room, name, event, ...(reason ? { reason } : {}) };
    for (const member of [...members.values()]) {
      if (member.name !== name) deliver(member, header);
    }
  };

  /** Sends to one member, or drops it when its queue is past the bound. */
  const deliver = (
    member: Member,
    header: Record<string, unknown> & { type: string },
    body?: Uint8Array,
  ): void => {
    if (member.connection.writableLength > maxQueueBytes) {
      drop(member);
      return;
    }
    member.connection.send(header, body);
  };

  const drop = (member: Member): void => {
    const membership = member.connection.state.get(stateKey) as Membership | undefined;
    if (!membership?.byRoom.has(member.room)) return; // already dropped by an earlier send
    for (const joined of [...membership.byRoom.values()]) remove(joined, 'dropped: too far behind');
    member.connection.log.warn('chat member dropped: too far behind', {
      connection: member.connection.id,
      name: member.name,
      queuedBytes: member.connection.writableLength,
    });
    member.connection.closeWithError(
      'BUSY',
      `dropped from chat: more than ${maxQueueBytes} bytes of messages waited for this client; read faster and join again`,
    );
  };

  /** Takes a member out of its room and tells the others it left (with why, when dropped). */
  const remove = (member: Member, reason?: string): void => {
    const membership = member.connection.state.get(stateKey) as Membership | undefined;
    if (!membership || membership.byRoom.get(member.room) !== member) return;
    membership.byRoom.delete(member.room);
    if (membership.byRoom.size === 0) {
      membership.release?.();
      membership.release = undefined;
    }
    const members = rooms.get(member.room);
    if (!members) return;
    members.delete(member.name);
    presence.remove(member.room, member.name, reason);
    if (members.size === 0) {
      rooms.delete(member.room);
      subscriptions.get(member.room)?.();
      subscriptions.delete(member.room);
    } else broadcastPresence(member.room, member.name, 'leave', reason);
  };

  const join = async (request: ServerRequest): Promise<void> => {
    const { room = 'lobby', name } = request.header as HeaderOfType<'join'>;
    const membership = membershipOf(request.connection);
    const already = membership.byRoom.get(room);
    if (already) {
      throw new SockitError('CONFLICT', `this connection already joined room "${room}" as "${already.name}"`);
    }
    if (membership.byRoom.size >= MAX_ROOMS_PER_CONNECTION) {
      throw new SockitError(
        'BUSY',
        `a connection may be in ${MAX_ROOMS_PER_CONNECTION} rooms at once; leave one first`,
      );
    }
    const taken = (): SockitError =>
      new SockitError('CONFLICT', `the name "${name}" is taken in room "${room}"; pick another name`);
    const pendingKey = `${room}\0${name}`;
    if (rooms.get(room)?.has(name) || pending.has(pendingKey) || presence.hasRemote(room, name))
      throw taken();
    pending.add(pendingKey);
    let claimed: boolean;
    try {
      claimed = await presence.claim(room, name);
    } finally {
      pending.delete(pendingKey);
    }
    if (!claimed) throw taken();
    if (request.signal.aborted || membership.byRoom.has(room)) {
      // The joiner went away, or joined this room under another name meanwhile.
      presence.unclaim(room, name);
      if (request.signal.aborted) return;
      throw new SockitError('CONFLICT', `this connection already joined room "${room}"`);
    }
    let members = rooms.get(room);
    if (!members) {
      members = new Map();
      rooms.set(room, members);
    }
    const member: Member = { name, room, connection: request.connection };
    members.set(name, member);
    membership.byRoom.set(room, member);
    presence.add(room, name);
    subscribe(room);
    // A chat member waits for messages: it is not idle.
    membership.release ??= request.connection.hold();
    request.reply({
      type: 'joined',
      room,
      name,
      members: [...members.keys(), ...presence.remoteMembers(room)],
    });
    broadcastPresence(room, name, 'join');
  };

  const leave = (request: ServerRequest): void => {
    const { room = 'lobby' } = request.header as HeaderOfType<'leave'>;
    const member = membershipOf(request.connection).byRoom.get(room);
    if (!member) throw new SockitError('NOT_FOUND', `this connection is not in room "${room}"`);
    remove(member);
    request.reply({ type: 'left', room });
  };

  const say = (frame: Frame, connection: ConnectionContext): void => {
    const { room = 'lobby' } = frame.header as HeaderOfType<'say'>;
    const sender = membershipOf(connection).byRoom.get(room);
    if (!sender) {
      connection.closeWithError('FORBIDDEN', `"say" to room "${room}" without joining it: send "join" first`);
      return;
    }
    if (frame.body.length > maxMessageBytes) {
      connection.closeWithError(
        'TOO_LARGE',
        `a chat message of ${frame.body.length} bytes is over the limit of ${maxMessageBytes}; send shorter messages`,
      );
      return;
    }
    const members = rooms.get(room);
    if (!members) return;
    const header = { type: 'message', room, from: sender.name };
    // The body is a fresh socket chunk (never reused), so every member's queue may hold it as is.
    for (const member of [...members.values()]) deliver(member, header, frame.body);
    delivered += members.size;
    // One publish per say, on one connection: the other servers get this sender's messages in
    // order. `t` (publish time) lets them measure the bus's lag.
    bus.publish(subjectOf(room), encodeEnvelope({ f: sender.name, t: Date.now() }, frame.body));
  };

  return {
    name: 'chat',
    requests: { join, leave },
    messages: { say },
    members(room: string): string[] {
      return [...(rooms.get(room)?.keys() ?? []), ...presence.remoteMembers(room)];
    },
    get roomCount() {
      return rooms.size;
    },
    get memberCount() {
      let count = 0;
      for (const members of rooms.values()) count += members.size;
      return count;
    },
    get deliveredCount() {
      return delivered;
    },
    onBusMessage(listener) {
      busListeners.add(listener);
      return () => busListeners.delete(listener);
    },
    close() {
      unwatchBus();
      presence.close();
      for (const unsubscribe of subscriptions.values()) unsubscribe();
      subscriptions.clear();
    },
  };
}
