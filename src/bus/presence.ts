import { type Bus, busToken } from './bus.js';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';

/** A member of a room on another server arriving or going. */
export interface RemotePresence {
  room: string;
  name: string;
  event: 'join' | 'leave';
  /** Set when the member went with its server (`server gone`) rather than by leaving. */
  reason?: string;
}

interface RemoteNode {
  /** The highest change number applied: older events and snapshots are stale and ignored. */
  version: number;
  lastSeen: number;
  rooms: Map<string, Set<string>>;
}

/** A node silent for this many heartbeats is gone, and its members with it. */
const BEATS_TO_EXPIRY = 3;

/**
 * Who is where, across every node on a bus, for one `scope` (framed chat, line chat):
 *
 * - Local joins claim `scope/room/name` on the bus first (unique across servers), then are
 *   announced at once; leaves are announced and released.
 * - Every heartbeat each node publishes a full snapshot of its members with its change number,
 *   so a lost announcement is repaired within one beat, and a node silent for 3 beats
 *   (`kill -9`, network gone) is dropped with its members.
 * - When this node's bus comes back it asks every node for a snapshot and sends its own: that is
 *   the resynchronisation after an outage. While the bus is down no remote node expires.
 *
 * Payloads are bus envelopes on `presence.<scope>`: `j`/`l` (join/leave), `s` (snapshot),
 * `q` (send your snapshot), `b` (goodbye).
 */
export class Presence {
  readonly #bus: Bus;
  readonly #scope: string;
  readonly #subject: string;
  /** This node's members: room → names. */
  readonly #local = new Map<string, Set<string>>();
  readonly #keys = new Map<string, { room: string; name: string }>();
  readonly #nodes = new Map<string, RemoteNode>();
  readonly #listeners = new Set<(change: RemotePresence) => void>();
  readonly #lostListeners = new Set<(room: string, name: string) => void>();
  readonly #cleanups: (() => void)[] = [];
  #version = 0;

  constructor(bus: Bus, scope: string) {
    this.#bus = bus;
    this.#scope = scope;
    this.#subject = `presence.${scope}`;
    this.#cleanups.push(bus.subscribe(this.#subject, (payload) => this.#receive(payload)));
    this.#cleanups.push(
      bus.onState((state) => {
        if (state !== 'up') return;
        const now = Date.now();
        for (const node of this.#nodes.values()) node.lastSeen = now; // a grace beat to answer
        this.#snapshot();
        this.#publish({ k: 'q' });
      }),
    );
    this.#cleanups.push(
      bus.onLost((key) => {
        const member = this.#keys.get(key);
        if (member) for (const listener of this.#lostListeners) listener(member.room, member.name);
      }),
    );
    const timer = setInterval(() => this.#beat(), bus.heartbeatMs);
    timer.unref();
    this.#cleanups.push(() => clearInterval(timer));
    this.#publish({ k: 'q' });
  }

  /** Told about every remote join and leave, snapshots and expiry included. */
  onChange(listener: (change: RemotePresence) => void): void {
    this.#listeners.add(listener);
  }

  /** Told when a local member's name was taken by another node during a bus outage. */
  onLost(listener: (room: string, name: string) => void): void {
    this.#lostListeners.add(listener);
  }

  /** True if `name` is in `room` on another node, as far as this node knows now. */
  hasRemote(room: string, name: string): boolean {
    for (const node of this.#nodes.values()) if (node.rooms.get(room)?.has(name)) return true;
    return false;
  }

  /** Members of `room` on other nodes. */
  remoteMembers(room: string): string[] {
    const names: string[] = [];
    for (const node of this.#nodes.values()) names.push(...(node.rooms.get(room) ?? []));
    return names;
  }

  /** Claims the name across the bus: false when another node holds it. */
  claim(room: string, name: string): Promise<boolean> {
    return this.#bus.claim(this.#key(room, name));
  }

  /** Gives up a claim that was never announced (the joiner went away meanwhile). */
  unclaim(room: string, name: string): void {
    this.#bus.release(this.#key(room, name));
  }

  /** Records a claimed member as here and tells the other nodes. */
  add(room: string, name: string): void {
    let names = this.#local.get(room);
    if (!names) {
      names = new Set();
      this.#local.set(room, names);
    }
    names.add(name);
    this.#keys.set(this.#key(room, name), { room, name });
    this.#publish({ k: 'j', v: ++this.#version, r: room, m: name });
  }

  /** Records a member as gone, tells the other nodes and releases its name. */
  remove(room: string, name: string, reason?: string): void {
    const names = this.#local.get(room);
    if (!names?.delete(name)) return;
    if (names.size === 0) this.#local.delete(room);
    const key = this.#key(room, name);
    this.#keys.delete(key);
    this.#publish({ k: 'l', v: ++this.#version, r: room, m: name, ...(reason ? { why: reason } : {}) });
    this.#bus.release(key);
  }

  /** Says goodbye (the others drop this node's members at once) and stops listening. */
  close(): void {
    this.#publish({ k: 'b' });
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  #key(room: string, name: string): string {
    return `${this.#scope}.${busToken(room)}.${busToken(name)}`;
  }

  #publish(header: Record<string, unknown>): void {
    this.#bus.publish(this.#subject, encodeEnvelope({ ...header, n: this.#bus.nodeId }));
  }

  #snapshot(): void {
    const rooms: Record<string, string[]> = {};
    for (const [room, names] of this.#local) rooms[room] = [...names];
    this.#publish({ k: 's', v: this.#version, rooms });
  }

  #beat(): void {
    this.#snapshot();
    if (this.#bus.state !== 'up') return;
    const deadline = Date.now() - BEATS_TO_EXPIRY * this.#bus.heartbeatMs;
    for (const [id, node] of this.#nodes) {
      if (node.lastSeen < deadline) this.#forget(id, 'server gone');
    }
  }

  #forget(id: string, reason: string): void {
    const node = this.#nodes.get(id);
    if (!node) return;
    this.#nodes.delete(id);
    for (const [room, names] of node.rooms) {
      for (const name of names) this.#emit({ room, name, event: 'leave', reason });
    }
  }

  #receive(payload: Uint8Array): void {
    const envelope = decodeEnvelope(payload);
    if (!envelope) return;
    const { header } = envelope;
    const id = header.n;
    if (typeof id !== 'string' || id === this.#bus.nodeId) return;
    if (header.k === 'b') {
      this.#forget(id, 'server stopped');
      return;
    }
    let node = this.#nodes.get(id);
    if (!node) {
      node = { version: -1, lastSeen: 0, rooms: new Map() };
      this.#nodes.set(id, node);
    }
    node.lastSeen = Date.now();
    const version = typeof header.v === 'number' ? header.v : -1;
    switch (header.k) {
      case 'q':
        this.#snapshot();
        return;
      case 'j':
      case 'l': {
        if (version <= node.version || typeof header.r !== 'string' || typeof header.m !== 'string') return;
        node.version = version;
        this.#apply(node, header.r, header.m, header.k === 'j' ? 'join' : 'leave', header.why);
        return;
      }
      case 's': {
        if (version < node.version || typeof header.rooms !== 'object' || header.rooms === null) return;
        node.version = version;
        this.#replace(node, header.rooms as Record<string, unknown>);
        return;
      }
    }
  }

  #apply(node: RemoteNode, room: string, name: string, event: 'join' | 'leave', why?: unknown): void {
    let names = node.rooms.get(room);
    if (event === 'join') {
      if (!names) {
        names = new Set();
        node.rooms.set(room, names);
      }
      if (names.has(name)) return;
      names.add(name);
    } else {
      if (!names?.delete(name)) return;
      if (names.size === 0) node.rooms.delete(room);
    }
    this.#emit({ room, name, event, ...(typeof why === 'string' ? { reason: why } : {}) });
  }

  /** A snapshot: whatever differs from what this node knew becomes joins and leaves. */
  #replace(node: RemoteNode, rooms: Record<string, unknown>): void {
    const next = new Map<string, Set<string>>();
    for (const [room, names] of Object.entries(rooms)) {
      if (Array.isArray(names)) next.set(room, new Set(names.filter((n) => typeof n === 'string')));
    }
    for (const [room, names] of [...node.rooms]) {
      for (const name of [...names]) if (!next.get(room)?.has(name)) this.#apply(node, room, name, 'leave');
    }
    for (const [room, names] of next) {
      for (const name of names) this.#apply(node, room, name, 'join');
    }
  }

  #emit(change: RemotePresence): void {
    for (const listener of this.#listeners) listener(change);
  }
}
