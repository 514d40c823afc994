import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { JetStreamApiError } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { SockitError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { type Bus, type BusState, busListeners, DEFAULT_HEARTBEAT_MS, redactBusUrl } from './bus.js';

export interface NatsBusOptions {
  /** `nats://HOST:PORT` or `tls://HOST:PORT` (several, comma-separated, for a NATS cluster). */
  url: string;
  /** A NATS `.creds` file (JWT + NKey seed). Read once, never logged. */
  credsFile?: string;
  /** TLS to NATS: CA to trust, and a client certificate if the server asks for one. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  heartbeatMs?: number;
  /** Subject and bucket prefix, so several deployments can share one NATS. Default `sockit`. */
  prefix?: string;
  log?: Logger;
}

/** `wrong last sequence`: the compare-and-set create found the key taken. */
const WRONG_LAST_SEQUENCE = 10071;
/** Claims refreshed at once per heartbeat; the rest wait their turn in the same beat. */
const REFRESH_BATCH = 64;
/** Reconnect backoff: 250 ms doubling to 5 s, with jitter so servers do not reconnect in step. */
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 5000;

/**
 * The NATS bus: core pub/sub carries messages and presence (at-most-once, ordered per
 * publisher), a JetStream key-value bucket whose entries live 3 heartbeats holds the names.
 * A claim is a compare-and-set `create`; this node refreshes its claims every heartbeat, so a
 * node killed without a goodbye loses them within 3 heartbeats. When NATS goes away the bus
 * reports `down`, drops what is published meanwhile, reconnects with backoff, and on `up`
 * re-asserts its claims (one that another node took in between is reported `lost`).
 */
export async function natsBus(options: NatsBusOptions): Promise<Bus> {
  const log = options.log ?? silentLogger;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const prefix = options.prefix ?? 'sockit';
  const where = redactBusUrl(options.url);
  const servers = options.url.split(',').map((one) => one.trim());
  const login = userInfo(servers);
  const wantsTls = servers.some((one) => /^tls:\/\//i.test(one)) || options.tls !== undefined;
  let creds: Uint8Array | undefined;
  if (options.credsFile !== undefined) {
    try {
      creds = readFileSync(options.credsFile);
    } catch (error) {
      throw new SockitError(
        'USAGE',
        `cannot read the bus credentials ${options.credsFile}: ${describe(error)}`,
      );
    }
  }
  let attempt = 0;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: servers.map((one) => one.replace(/^[a-z]+:\/\//i, 'nats://').replace(/\/\/[^@/]*@/, '//')),
      ...login,
      name: `sockit ${process.pid}`,
      noEcho: true,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: () => {
        const base = Math.min(BACKOFF_FIRST_MS * 2 ** attempt++, BACKOFF_MAX_MS);
        return base / 2 + Math.random() * (base / 2);
      },
      ...(creds !== undefined ? { authenticator: credsAuthenticator(creds) } : {}),
      ...(wantsTls ? { tls: { ...options.tls } } : {}),
    });
  } catch (error) {
    throw new SockitError('CONNECT_FAILED', `cannot reach the bus at ${where}: ${describe(error)}`, {
      cause: error,
    });
  }
  let kv: KV;
  try {
    kv = await new Kvm(nc).create(`${prefix}-names`, { ttl: 3 * heartbeatMs, history: 1 });
  } catch (error) {
    await nc.close().catch(() => {});
    throw new SockitError(
      'CONNECT_FAILED',
      `the bus at ${where} has no usable JetStream for the name registry (start nats-server with -js): ${describe(error)}`,
      { cause: error },
    );
  }

  const ttlMs = (await kv.status()).ttl;
  if (ttlMs !== 3 * heartbeatMs) {
    await nc.close().catch(() => {});
    throw new SockitError(
      'USAGE',
      `the servers on ${where} refresh names every ${ttlMs / 3} ms (set by the first of them); start this one with --bus-heartbeat ${ttlMs / 3}ms too`,
    );
  }

  const nodeId = randomUUID();
  const events = new EventEmitter();
  /** Claims this node holds: key → the revision its last write got. */
  const claims = new Map<string, number>();
  let state: BusState = 'up';
  let closed = false;
  let refreshing = false;

  const setState = (next: BusState): void => {
    if (state === next || closed) return;
    state = next;
    if (next === 'down') log.warn('bus down: serving local members only, reconnecting', { bus: where });
    else log.info('bus up again', { bus: where });
    events.emit('state', next);
  };

  /** Makes the key ours again after a failed refresh, or reports it lost. */
  const reassert = async (key: string): Promise<void> => {
    const entry = await kv.get(key);
    if (!claims.has(key)) return; // released meanwhile
    if (entry && entry.operation === 'PUT' && entry.string() !== nodeId) {
      claims.delete(key);
      log.warn('a name this server held was taken by another server while the bus was away', { key });
      events.emit('lost', key);
      return;
    }
    try {
      claims.set(key, entry?.operation === 'PUT' ? entry.revision : await kv.create(key, nodeId));
    } catch (error) {
      if (!isTaken(error)) throw error;
      claims.delete(key);
      events.emit('lost', key);
    }
  };

  const refresh = async (): Promise<void> => {
    if (refreshing || state === 'down' || closed) return;
    refreshing = true;
    try {
      const keys = [...claims.keys()];
      for (let start = 0; start < keys.length; start += REFRESH_BATCH) {
        await Promise.all(
          keys.slice(start, start + REFRESH_BATCH).map(async (key) => {
            const revision = claims.get(key);
            if (revision === undefined) return;
            try {
              const next = await kv.update(key, nodeId, revision);
              if (claims.has(key)) claims.set(key, next);
            } catch {
              await reassert(key).catch((error: unknown) =>
                log.debug('claim refresh failed; next heartbeat retries', { key, error: describe(error) }),
              );
            }
          }),
        );
      }
    } finally {
      refreshing = false;
    }
  };
  const timer = setInterval(() => void refresh(), heartbeatMs);
  timer.unref();

  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') setState('down');
      else if (status.type === 'reconnect') {
        attempt = 0;
        setState('up');
        void refresh();
      }
    }
  })();
  void nc.closed().then(() => setState('down'));

  return {
    nodeId,
    kind: 'nats',
    get state() {
      return state;
    },
    heartbeatMs,
    publish(subject, payload) {
      if (state === 'down' || closed) return false;
      nc.publish(`${prefix}.${subject}`, payload);
      return true;
    },
    subscribe(subject, handler) {
      const subscription = nc.subscribe(`${prefix}.${subject}`, {
        callback: (error, message) => {
          if (!error) handler(message.data);
        },
      });
      return () => subscription.unsubscribe();
    },
    async claim(key) {
      if (state === 'down' || closed) {
        throw new SockitError(
          'UNAVAILABLE',
          'the bus between servers is down, so a name cannot be checked across them now; try again shortly',
        );
      }
      try {
        claims.set(key, await kv.create(key, nodeId));
        return true;
      } catch (error) {
        if (isTaken(error)) return false;
        throw new SockitError('UNAVAILABLE', `the name registry did not answer: ${describe(error)}`, {
          cause: error,
        });
      }
    },
    release(key) {
      const revision = claims.get(key);
      if (revision === undefined) return;
      claims.delete(key);
      if (state === 'up' && !closed) kv.delete(key, { previousSeq: revision }).catch(() => {});
    },
    ...busListeners(events),
    async close() {
      if (closed) return;
      clearInterval(timer);
      const held = [...claims];
      claims.clear();
      if (state === 'up') {
        await Promise.all(
          held.map(([key, revision]) => kv.delete(key, { previousSeq: revision }).catch(() => {})),
        );
      }
      const wasUp = state === 'up';
      closed = true;
      // Draining waits for the server to confirm; with NATS gone there is nothing to wait for.
      await (wasUp ? nc.drain() : nc.close()).catch(() => nc.close());
    },
  };
}

/** `user:pass@` (or a lone `token@`) from the first server URL that has one, as NATS connect options. */
function userInfo(servers: string[]): { user?: string; pass?: string; token?: string } {
  for (const server of servers) {
    const match = /^[a-z]+:\/\/([^@/]*)@/i.exec(server);
    if (!match) continue;
    const [user, pass] = match[1]!.split(':').map(decodeURIComponent);
    return pass === undefined ? { token: user! } : { user: user!, pass };
  }
  return {};
}

function isTaken(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
