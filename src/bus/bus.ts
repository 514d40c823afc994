/**
 * The bus: what several sockit servers share so that chat rooms, presence and the raw broker and
 * line chat span all of them. Two implementations: `memoryBus` (one process; the default, which
 * with a private hub is exactly the single-server behaviour) and `natsBus` (NATS core pub/sub for
 * messages, JetStream key-value for the name registry).
 *
 * Delivery is at-most-once (NATS core): what a bus carries while it is down is lost, never
 * replayed. Order is kept per publisher and subject.
 */
import type { EventEmitter } from 'node:events';
export type BusState = 'up' | 'down';

/** One shared medium: subjects to publish on, and a registry of names unique across servers. */
export interface Bus {
  /** This server's id on the bus, unique per process run. */
  readonly nodeId: string;
  /** `memory` or `nats`, for logs and metrics. */
  readonly kind: string;
  readonly state: BusState;
  /** How often presence is announced and claims refreshed; a silent node is gone after 3 beats. */
  readonly heartbeatMs: number;
  /**
   * Sends `payload` to every other node subscribed to `subject` (never back to this node).
   * False when the bus is down: the payload was dropped, not queued (at-most-once).
   */
  publish(subject: string, payload: Uint8Array): boolean;
  /** Calls `handler` for every payload other nodes publish on `subject`; returns the unsubscribe. */
  subscribe(subject: string, handler: (payload: Uint8Array) => void): () => void;
  /**
   * Claims `key` for this node: true if it was free (compare-and-set create), false if another
   * node holds it. The claim is kept alive by the bus until `release`; a node that dies without
   * releasing loses its claims after the bus's TTL. Rejects with UNAVAILABLE while the bus is down.
   */
  claim(key: string): Promise<boolean>;
  /** Gives a claim up (best effort: an unreachable bus lets it expire instead). */
  release(key: string): void;
  /** Calls `listener` on every state change; returns the unsubscribe. */
  onState(listener: (state: BusState) => void): () => void;
  /** Calls `listener` for every claim this node lost (see `claim`); returns the unsubscribe. */
  onLost(listener: (key: string) => void): () => void;
  /** Releases every claim and disconnects. */
  close(): Promise<void>;
}

/** Keys and subjects take `[A-Za-z0-9_-]` tokens: room and user names are encoded to fit. */
export function busToken(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Default heartbeat: presence snapshots and claim refreshes every 2 s, so a dead node is gone in ≤ 6 s. */
export const DEFAULT_HEARTBEAT_MS = 2000;

/** `host:port` list of a bus URL with any user and password left out: what logs may show. */
export function redactBusUrl(url: string): string {
  return url
    .split(',')
    .map((one) =>
      one
        .trim()
        .replace(/^[a-z+]+:\/\//i, '')
        .replace(/^[^@]*@/, ''),
    )
    .join(',');
}

/**
 * `onState` and `onLost` of a bus that emits `state` and `lost` on `events`: the same for every
 * implementation.
 */
export function busListeners(events: EventEmitter): Pick<Bus, 'onState' | 'onLost'> {
  return {
    onState(listener) {
      events.on('state', listener);
      return () => events.off('state', listener);
    },
    onLost(listener) {
      events.on('lost', listener);
      return () => events.off('lost', listener);
    },
  };
}
