import type { Bus } from '../bus/bus.js';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { type MetricsEndpoint, serveMetrics } from '../metrics/http.js';
import { createServerMetrics } from '../metrics/metrics.js';
import type { ServerObserver } from '../server/observer.js';
import type { Service } from '../server/service.js';
import type { ChatService } from '../services/chat.js';
import { answerReadiness, isServeWorker, shareWorkerMetrics } from './serve-workers.js';

/** `--metrics` as host and port: `HOST:PORT`, `[V6]:PORT`, or a bare `PORT` on 127.0.0.1. */
export function parseMetricsAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new SockitError('USAGE', `--metrics takes HOST:PORT or PORT, got "${text}"`);
  }
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

/** The metrics of one `sockit serve`: the observer to give `serve()`, and the HTTP endpoint. */
export async function startServeMetrics(
  address: string,
  services: Service[],
  bus: Bus | undefined,
  server: () => { closing: boolean } | undefined,
  log: Logger,
): Promise<{ observer: ServerObserver; endpoint: MetricsEndpoint | undefined }> {
  const { host, port } = parseMetricsAddress(address);
  const chat = services.find((service) => service.name === 'chat') as ChatService | undefined;
  const metrics = createServerMetrics({
    bus,
    draining: () => server()?.closing ?? false,
    listening: () => server() !== undefined,
    chat,
  });
  if (isServeWorker()) {
    // The primary serves /metrics for all workers, summed.
    shareWorkerMetrics(metrics.registry);
    answerReadiness(() => metrics.readiness());
    return { observer: metrics.observer, endpoint: undefined };
  }
  const endpoint = await serveMetrics(host, port, metrics);
  log.info('metrics', { url: `${endpoint.url}/metrics` });
  return { observer: metrics.observer, endpoint };
}
