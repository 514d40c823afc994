import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Bus } from '../bus/bus.js';
import type { ServerObserver } from '../server/observer.js';

/** What a chat service shows the metrics (the `ChatService` view they need). */
export interface ChatStats {
  /** Memberships on this server, all rooms. */
  readonly memberCount: number;
  /** Messages handed to members here, since start. */
  readonly deliveredCount: number;
  /** Each message from another server, with its publish-to-delivery time in ms. */
  onBusMessage(listener: (lagMs: number) => void): () => void;
}

/** Upper bounds (seconds) of the bus lag histogram: loopback is sub-millisecond, a WAN tens of ms. */
const LAG_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** What the metrics read at scrape time besides the observer's events. */
export interface MetricsSources {
  bus?: Bus | undefined;
  /** The chat service, with `--chat`. */
  chat?: ChatStats | undefined;
  /** True while the server drains (SIGTERM): `/readyz` answers 503. */
  draining?: () => boolean;
  /** False until the server listens: `/readyz` answers 503 (starting). */
  listening?: () => boolean;
}

/** The `--workers` primary's own series, served after the workers' summed ones. */
export interface PrimaryMetrics {
  readonly registry: Registry;
  /** A worker died and another was started. */
  restarted(): void;
}

/**
 * `sockit_workers_running` (read at scrape) and `sockit_worker_restarts_total`: what only the
 * primary knows. Their names are not among the workers' series, so the two texts concatenate.
 */
export function createPrimaryMetrics(running: () => number): PrimaryMetrics {
  const registry = new Registry();
  new Gauge({
    name: 'sockit_workers_running',
    help: 'Worker processes running now (--workers).',
    registers: [registry],
    collect() {
      this.set(running());
    },
  });
  const restarts = new Counter({
    name: 'sockit_worker_restarts_total',
    help: 'Workers that died and were replaced.',
    registers: [registry],
  });
  return { registry, restarted: () => restarts.inc() };
}

/** A registry with sockit's series, and the observer that feeds them. */
export interface ServerMetrics extends MetricsSource {
  readonly registry: Registry;
  readonly observer: ServerObserver;
  /** One server answers at once (the `--workers` primary asks its workers). */
  readiness(): Readiness;
}

/** Whether a server takes new work, and why not. */
export interface Readiness {
  ready: boolean;
  reason?: string;
}

/** What the HTTP endpoint serves: a scrape, and readiness. */
export interface MetricsSource {
  readonly contentType: string;
  scrape(): Promise<string>;
  /** Ready for new work: listening, not draining, and the bus (if any) is up. With why not. */
  readiness(): Readiness | Promise<Readiness>;
}

/**
 * sockit's Prometheus series (names `sockit_*`, plus process memory and start time): connections,
 * refusals, requests by type and final code, bytes, exec exit statuses, file bytes and integrity
 * failures, chat members and messages, bus state and lag. Counters only grow; the gauges are
 * read when scraped. Under `--workers` the primary sums every worker's series (`aggregator`
 * says where a sum would be wrong).
 */
export function createServerMetrics(sources: MetricsSources = {}): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  // prom-client's default Node metrics include gauges named *_total, which promtool rejects:
  // the two process series operators use most, named by Prometheus convention, instead.
  new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers,
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  const started = new Gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since the Unix epoch, in seconds.',
    registers,
    aggregator: 'min', // across workers: the earliest
  });
  started.set(Math.round(Date.now() / 1000 - process.uptime()));
  let open = 0;
  new Gauge({
    name: 'sockit_connections_open',
    help: 'Framed connections open now.',
    registers,
    collect() {
      this.set(open);
    },
  });
  const total = new Counter({
    name: 'sockit_connections_total',
    help: 'Framed connections accepted.',
    registers,
  });
  const refused = new Counter({
    name: 'sockit_connections_refused_total',
    help: 'Connections turned away before their handshake, by reason.',
    labelNames: ['reason'],
    registers,
  });
  const errors = new Counter({
    name: 'sockit_connection_errors_total',
    help: 'Connections closed with an error frame, by code (AUTH_FAILED, TIMEOUT, ...).',
    labelNames: ['code'],
    registers,
  });
  const bytesIn = new Counter({
    name: 'sockit_bytes_received_total',
    help: 'Bytes read from closed connections.',
    registers,
  });
  const bytesOut = new Counter({
    name: 'sockit_bytes_sent_total',
    help: 'Bytes written to closed connections.',
    registers,
  });
  const openRequests = new Map<string, number>();
  new Gauge({
    name: 'sockit_requests_open',
    help: 'Requests running now, by type (exec = commands running).',
    labelNames: ['type'],
    registers,
    collect() {
      this.reset();
      for (const [type, count] of openRequests) this.set({ type }, count);
    },
  });
  const requests = new Counter({
    name: 'sockit_requests_total',
    help: 'Requests finished, by type and final code (OK or the error code).',
    labelNames: ['type', 'code'],
    registers,
  });
  const messages = new Counter({
    name: 'sockit_messages_total',
    help: 'Id-less messages received, by type (chat say).',
    labelNames: ['type'],
    registers,
  });
  const exits = new Counter({
    name: 'sockit_exec_exits_total',
    help: 'Commands that ended, by exit code or (code "") by the signal that killed them.',
    labelNames: ['code', 'signal'],
    registers,
  });
  const fileBytesIn = new Counter({
    name: 'sockit_file_bytes_received_total',
    help: 'File bytes received by put (failed transfers included).',
    registers,
  });
  const fileBytesOut = new Counter({
    name: 'sockit_file_bytes_sent_total',
    help: 'File bytes sent by get (failed transfers included).',
    registers,
  });
  const integrity = new Counter({
    name: 'sockit_file_integrity_failures_total',
    help: 'Transfers that ended INTEGRITY (size or digest mismatch), by type (put, get).',
    labelNames: ['type'],
    registers,
  });
  const { chat } = sources;
  if (chat) {
    new Gauge({
      name: 'sockit_chat_members',
      help: 'Chat memberships on this server (a member in two rooms counts twice).',
      registers,
      collect() {
        this.set(chat.memberCount);
      },
    });
    new Counter({
      name: 'sockit_chat_messages_delivered_total',
      help: 'Chat messages handed to members on this server (one per receiving member).',
      registers,
      collect() {
        this.reset();
        this.inc(chat.deliveredCount);
      },
    });
  }
  const { bus } = sources;
  if (bus && chat) {
    const fromBus = new Counter({
      name: 'sockit_bus_messages_received_total',
      help: 'Chat messages other servers published that arrived here.',
      registers,
    });
    const lag = new Histogram({
      name: 'sockit_bus_lag_seconds',
      help: "Time from a chat message's publish on another server to its delivery here (wall clocks).",
      buckets: LAG_BUCKETS,
      registers,
    });
    chat.onBusMessage((lagMs) => {
      fromBus.inc();
      lag.observe(Math.max(0, lagMs) / 1000);
    });
  }
  if (bus) {
    new Gauge({
      name: 'sockit_bus_up',
      help: 'Whether the bus to the other servers is up (1) or down (0); with workers, 1 only when all are up.',
      labelNames: ['kind'],
      registers,
      aggregator: 'min',
      collect() {
        this.set({ kind: bus.kind }, bus.state === 'up' ? 1 : 0);
      },
    });
    const changes = new Counter({
      name: 'sockit_bus_state_changes_total',
      help: 'Times the bus went down or came back, by the new state.',
      labelNames: ['state'],
      registers,
    });
    bus.onState((state) => changes.inc({ state }));
  }
  const observer: ServerObserver = {
    connectionOpened() {
      open++;
      total.inc();
    },
    connectionClosed(read, written) {
      open--;
      bytesIn.inc(read);
      bytesOut.inc(written);
    },
    refused: (reason) => refused.inc({ reason }),
    connectionError: (code) => errors.inc({ code }),
    requestStarted(type) {
      openRequests.set(type, (openRequests.get(type) ?? 0) + 1);
    },
    requestFinished(type, code, outcome) {
      openRequests.set(type, (openRequests.get(type) ?? 1) - 1);
      requests.inc({ type, code });
      if (code === 'INTEGRITY') integrity.inc({ type });
      if (outcome === undefined) return;
      if (outcome.exit) exits.inc({ code: outcome.exit.code ?? '', signal: outcome.exit.signal ?? '' });
      if (outcome.bytesIn) fileBytesIn.inc(outcome.bytesIn);
      if (outcome.bytesOut) fileBytesOut.inc(outcome.bytesOut);
    },
    message: (type) => messages.inc({ type }),
  };
  return {
    registry,
    observer,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    readiness(): Readiness {
      if (sources.listening?.() === false) return { ready: false, reason: 'starting' };
      if (sources.draining?.()) return { ready: false, reason: 'draining' };
      if (bus && bus.state !== 'up') return { ready: false, reason: 'bus down' };
      return { ready: true };
    },
  };
}
