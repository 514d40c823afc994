import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { serveMetrics } from '../metrics/http.js';
import { parseMetricsAddress } from './serve-metrics.js';
import { untilSignal } from './signals.js';

/** Set in the environment of the processes `--workers` forks. */
const WORKER_ENV = 'SOCKIT_SERVE_WORKER';
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

/** True in a process that `--workers` forked: it serves, the primary supervises. */
export function isServeWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
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
 * first worker's banner, restarts a worker that dies (logged), serves the workers' metrics
 * summed when `--metrics` is given, and on SIGTERM/SIGINT has every worker drain, exiting once
 * all have. Token and certificate are made before the fork (`prepare`), so all share them.
 */
export async function runPrimary(options: {
  count: number;
  log: Logger;
  metrics?: string | undefined;
  prepare: () => void;
}): Promise<void> {
  const { count, log } = options;
  options.prepare();
  let stopping = false;
  const restarts: number[] = [];
  let bannerShown = false;
  const endpoint =
    options.metrics === undefined
      ? undefined
      : await (async () => {
          const { host, port } = parseMetricsAddress(options.metrics!);
          const aggregator = new AggregatorRegistry();
          return serveMetrics(host, port, {
            contentType: aggregator.contentType,
            scrape: () => aggregator.clusterMetrics(),
            readiness: () => (stopping ? { ready: false, reason: 'draining' } : { ready: true }),
          });
        })();

  const fork = (): Worker => {
    const worker = cluster.fork({ [WORKER_ENV]: '1' });
    worker.on('message', (message: { sockit?: string; text?: string }) => {
      if (message?.sockit !== 'banner' || bannerShown) return;
      bannerShown = true;
      const pids = Object.values(cluster.workers ?? {}).map((w) => w?.process.pid);
      const extra = [`workers: ${count} (pids ${pids.join(', ')}; primary ${process.pid})`];
      if (endpoint) extra.push(`metrics: ${endpoint.url}/metrics  (/healthz, /readyz; all workers summed)`);
      process.stdout.write(`${message.text}\n${extra.join('\n')}\n`);
    });
    worker.once('online', () => log.info('worker started', { pid: worker.process.pid }));
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
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
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      process.exitCode = 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(1);
      return;
    }
    log.warn('worker exited; starting another', { pid: worker.process.pid, code, signal });
    fork();
  });

  for (let i = 0; i < count; i++) fork();

  const signal = untilSignal();
  signal.addEventListener('abort', () => {
    stopping = true;
    log.info('shutting down: draining every worker', { signal: signal.reason, workers: count });
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  });
}
