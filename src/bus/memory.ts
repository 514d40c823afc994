import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Bus, type BusState, busListeners, DEFAULT_HEARTBEAT_MS } from './bus.js';

/** Nodes of one process that share subjects and claims: several servers in one test, say. */
export class MemoryHub {
  readonly subscribers = new Map<string, Set<{ nodeId: string; handler: (payload: Uint8Array) => void }>>();
  readonly claims = new Map<string, string>();
}

/**
 * The in-process bus. With its own hub (the default) it has no peers, and a server behaves as
 * it always did on its own; servers given one shared hub share rooms as over NATS. Payloads
 * are delivered on a microtask, in publish order, like a network that never fails.
 */
export function memoryBus(options: { hub?: MemoryHub; heartbeatMs?: number } = {}): Bus {
  const hub = options.hub ?? new MemoryHub();
  const nodeId = randomUUID();
  const events = new EventEmitter();
  const mine = new Set<string>();
  return {
    nodeId,
    kind: 'memory',
    get state(): BusState {
      return 'up';
    },
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    publish(subject, payload) {
      const subscribers = hub.subscribers.get(subject);
      if (!subscribers) return true;
      for (const subscriber of subscribers) {
        if (subscriber.nodeId !== nodeId) queueMicrotask(() => subscriber.handler(payload));
      }
      return true;
    },
    subscribe(subject, handler) {
      let subscribers = hub.subscribers.get(subject);
      if (!subscribers) {
        subscribers = new Set();
        hub.subscribers.set(subject, subscribers);
      }
      const entry = { nodeId, handler };
      subscribers.add(entry);
      return () => {
        subscribers.delete(entry);
        if (subscribers.size === 0) hub.subscribers.delete(subject);
      };
    },
    async claim(key) {
      const holder = hub.claims.get(key);
      if (holder !== undefined && holder !== nodeId) return false;
      hub.claims.set(key, nodeId);
      mine.add(key);
      return true;
    },
    release(key) {
      if (!mine.delete(key)) return;
      if (hub.claims.get(key) === nodeId) hub.claims.delete(key);
    },
    ...busListeners(events),
    async close() {
      for (const key of [...mine]) this.release(key);
    },
  };
}
