import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { serveMetrics } from '../metrics/http.js';
import { createPrimaryMetrics, type Readiness } from '../metrics/metrics.js';
import { formatListenTarget, type ListenTarget } from '../transport/address.js';
import { reusePortSupported } from '../transport/listen.js';
import { parseMetricsAddress } from './serve-metrics.js';
import { untilSignal } from './signals.js';

/** Set in the environment of the processes `--workers` forks. */
const WORKER_ENV = 'SOCKIT_SERVE_WORKER';
/**
 * The addresses the primary resolved (JSON), for its workers: they must not resolve systemd's
 * variables again, which name the primary's pid and are gone from their environment.
 */
const WORKER_LISTEN_ENV = 'SOCKIT_SERVE_LISTEN';
/** A worker that has not answered a readiness question within this long counts as not ready. */
const READINESS_DEADLINE_MS = 2000;
/** A crash loop is stopped: more restarts than this within a minute ends the server. */
const MAX_RESTARTS_PER_MINUTE = 10;

/** `--workers N|auto` → a count (`auto` = the cores this process may use). */
export function parseWorkers(text: string | undefined): number {
  if (text === undefined) return 1;
  if (text === 'auto') return availableParallelism();
  const count = Number(text);
  if (!Number.isInteger(count) || count < 1 || count > 256) {
    throw new SockitError('USAGE', `--workers takes a number from 1 to 256 or auto, got "${text}"`);
  }
  return count;
}

/** How the workers share a port: `cluster` (the primary accepts and hands out) or `reuseport`. */
export type Balance = 'cluster' | 'reuseport';

/**
 * `--balance cluster|reuseport`. `reuseport` (each worker binds the port itself with
 * SO_REUSEPORT, the kernel spreads connections) needs a Node that has it, and fixed TCP/TLS
 * ports: port 0 would give every worker a port of its own, and Unix or inherited sockets are
 * one socket for all anyway.
 */
export function parseBalance(text: string | undefined, addresses: readonly ListenTarget[]): Balance {
  if (text === undefined || text === 'cluster') return 'cluster';
  if (text !== 'reuseport')
    throw new SockitError('USAGE', `--balance takes cluster or reuseport, got "${text}"`);
  if (!reusePortSupported()) {
    throw new SockitError(
      'USAGE',
      `--balance reuseport needs Node >= 22.12 on Linux (this is Node ${process.versions.node} on ${process.platform}); leave it at cluster`,
    );
  }
  for (const target of addresses) {
    if (target.kind === 'unix' || target.kind === 'fd' || target.port === 0) {
      throw new SockitError(
        'USAGE',
        `--balance reuseport binds fixed TCP ports in every worker: ${formatListenTarget(target)} cannot be shared so (leave it at cluster)`,
      );
    }
  }
  return 'reuseport';
}

/** True in a process that `--workers` forked: it serves, the primary supervises. */
export function isServeWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

/** In a worker: the addresses its primary resolved; undefined elsewhere. */
export function workerAddresses(): string[] | undefined {
  const text = isServeWorker() ? process.env[WORKER_LISTEN_ENV] : undefined;
  return text === undefined ? undefined : (JSON.parse(text) as string[]);
}

/** In a worker: answers the primary's readiness questions (`/readyz` is served there). */
export function answerReadiness(readiness: () => Readiness): void {
  process.on('message', (message: { sockit?: string; id?: number }) => {
    if (message?.sockit !== 'readyz?') return;
    process.send?.({ sockit: 'readyz', id: message.id, ...readiness() });
  });
}

/** In a worker: hands the banner to the primary, which prints one for all of them. */
export function sendBanner(text: string): void {
  process.send?.({ sockit: 'banner', text });
}

/** In a worker: the primary scrapes this registry for the aggregated `/metrics`. */
export function shareWorkerMetrics(registry: Registry): void {
  new AggregatorRegistry(); // its constructor installs the worker's answer to the primary's scrape
  AggregatorRegistry.setRegistries([registry]);
}

/**
 * In a worker: aborts on SIGTERM, which the primary sends to drain. Ctrl-C reaches the whole
 * process group, so SIGINT is left to the primary: one signal, one orderly drain.
 */
export function workerStopSignal(): AbortSignal {
  const controller = new AbortController();
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort('SIGTERM');
  });
  return controller.signal;
}

/**
 * The `--workers N` primary: forks N workers running the same `sockit serve` (node:cluster, so
 * they share each listening socket: one port, connections spread over the workers), prints the
 * banner once every worker listens (the first's text), restarts a worker that dies (logged), serves the workers' metrics
 * summed when `--metrics` is given (ready only when every worker is), forwards SIGHUP (reload)
 * to every worker, and on SIGTERM/SIGINT has every worker drain, exiting once all have. Token
 * and certificate are made before the fork (`prepare`), so all share them.
 */
export async function runPrimary(options: {
  count: number;
  log: Logger;
  metrics?: string | undefined;
  /** What every worker listens on, resolved once here (systemd's sockets are the primary's). */
  addresses: readonly string[];
  prepare: () => void;
}): Promise<void> {
  const { count, log } = options;
  options.prepare();
  let stopping = false;
  const restarts: number[] = [];
  /**
   * The workers whose process has not exited, kept here: node:cluster drops a worker from
   * `cluster.workers` only once it has both exited and disconnected, in either order, so the
   * last 'exit' can come while `cluster.workers` still lists it, and a count of that never
   * reached zero (a drained primary that never exited).
   */
  const alive = new Set<Worker>();
  const primaryMetrics = createPrimaryMetrics(() => alive.size);
  let bannerShown = false;
  const listening = new Set<number>();
  const endpoint =
    options.metrics === undefined
      ? undefined
      : await (async () => {
          const { host, port } = parseMetricsAddress(options.metrics!);
          const aggregator = new AggregatorRegistry();
          return serveMetrics(host, port, {
            contentType: aggregator.contentType,
            scrape: async () => {
              const workers = await aggregator.clusterMetrics();
              return `${workers.endsWith('\n') ? workers : `${workers}\n`}${await primaryMetrics.registry.metrics()}`;
            },
            readiness: () =>
              stopping
                ? { ready: false, reason: 'draining' }
                : workersReadiness(count, READINESS_DEADLINE_MS),
          });
        })();

  const fork = (): Worker => {
    const worker = cluster.fork({
      [WORKER_ENV]: '1',
      [WORKER_LISTEN_ENV]: JSON.stringify(options.addresses),
    });
    worker.on('message', (message: { sockit?: string; text?: string }) => {
      if (message?.sockit !== 'banner' || bannerShown) return;
      // Printed once all listen, so a banner means every worker serves (and reloads on SIGHUP).
      listening.add(worker.id);
      if (listening.size < count) return;
      bannerShown = true;
      const pids = Object.values(cluster.workers ?? {}).map((w) => w?.process.pid);
      const extra = [`workers: ${count} (pids ${pids.join(', ')}; primary ${process.pid})`];
      if (endpoint) extra.push(`metrics: ${endpoint.url}/metrics  (/healthz, /readyz; all workers summed)`);
      process.stdout.write(`${message.text}\n${extra.join('\n')}\n`);
    });
    worker.once('online', () => log.info('worker started', { pid: worker.process.pid }));
    alive.add(worker);
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    alive.delete(worker);
    if (stopping) {
      if (alive.size === 0) {
        log.info('stopped');
        void endpoint?.close().then(() => process.exit(0));
      }
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts[0]! < now - 60_000) restarts.shift();
    if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
      log.error('workers keep dying; stopping the server', { restarts: restarts.length });
      stopping = true;
      for (const other of alive) other.process.kill('SIGTERM');
      process.exitCode = 1;
      if (alive.size === 0) process.exit(1);
      return;
    }
    log.warn('worker exited; starting another', { pid: worker.process.pid, code, signal });
    primaryMetrics.restarted();
    fork();
  });

  process.on('SIGHUP', () => {
    log.info('reload: SIGHUP passed to every worker');
    for (const worker of alive) worker.process.kill('SIGHUP');
  });
  for (let i = 0; i < count; i++) fork();

  const signal = untilSignal();
  signal.addEventListener('abort', () => {
    stopping = true;
    log.info('shutting down: draining every worker', { signal: signal.reason, workers: count });
    for (const worker of alive) worker.process.kill('SIGTERM');
  });
}

let nextQuestion = 1;

/**
 * Asks every worker whether it is ready: ready only when `count` workers run and each says so
 * within `deadlineMs` (a worker being restarted, draining, or with its bus down is not).
 */
async function workersReadiness(count: number, deadlineMs: number): Promise<Readiness> {
  const workers = Object.values(cluster.workers ?? {}).filter(
    (worker): worker is Worker => worker !== undefined,
  );
  if (workers.length < count)
    return { ready: false, reason: `${workers.length} of ${count} workers running` };
  const id = nextQuestion++;
  const answers = await Promise.all(
    workers.map(
      (worker) =>
        new Promise<Readiness>((resolve) => {
          const timer = setTimeout(() => done({ ready: false, reason: 'no answer' }), deadlineMs);
          const onMessage = (message: Readiness & { sockit?: string; id?: number }): void => {
            if (message?.sockit === 'readyz' && message.id === id) done(message);
          };
          const done = (answer: Readiness): void => {
            clearTimeout(timer);
            worker.off('message', onMessage);
            resolve({
              ready: answer.ready,
              ...(answer.reason ? { reason: `worker ${worker.process.pid}: ${answer.reason}` } : {}),
            });
          };
          worker.on('message', onMessage);
          if (!worker.isConnected()) done({ ready: false, reason: 'not connected' });
          else worker.send({ sockit: 'readyz?', id });
        }),
    ),
  );
  return answers.find((answer) => !answer.ready) ?? { ready: true };
}
