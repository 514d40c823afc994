import type { Address } from '../transport/address.js';

/** A running forwarder. */
export interface Forwarder {
  /** Bound listen addresses, port 0 resolved. */
  readonly addresses: Address[];
  readonly tlsFingerprint: string | undefined;
  /** What relays the bytes: the native engine (`native/forward.c`) or Node's own sockets. */
  readonly engine: 'native' | 'node';
  /** Connections being relayed now. */
  readonly connectionCount: number;
  /** Stops accepting; connections finish on their own until `deadlineMs`, then are cut. */
  close(deadlineMs?: number): Promise<void>;
}

/** How long `close()` lets open connections finish before it cuts them, unless told. */
export const DEFAULT_FORWARD_DRAIN_MS = 10_000;
