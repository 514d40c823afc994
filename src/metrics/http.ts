import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fromSystemError } from '../errors.js';
import type { MetricsSource } from './metrics.js';

/** The running metrics endpoint. */
export interface MetricsEndpoint {
  /** `http://HOST:PORT`, port 0 resolved. */
  readonly url: string;
  close(): Promise<void>;
}

/** Deadline for one scrape request, start to end: a slow client cannot hold a socket longer. */
const REQUEST_DEADLINE_MS = 10_000;

/**
 * `--metrics HOST:PORT`: `GET /metrics` (Prometheus text format), `/healthz` (200 while the
 * process runs), `/readyz` (200, or 503 with the reason while draining or the bus is down).
 */
export async function serveMetrics(
  host: string,
  port: number,
  metrics: MetricsSource,
): Promise<MetricsEndpoint> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const text = (status: number, body: string): void => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return text(405, 'GET only\n');
    if (path === '/healthz') return text(200, 'ok\n');
    if (path === '/readyz') {
      Promise.resolve(metrics.readiness()).then(
        ({ ready, reason }) => text(ready ? 200 : 503, ready ? 'ready\n' : `not ready: ${reason}\n`),
        () => text(503, 'not ready: readiness could not be checked\n'),
      );
      return;
    }
    if (path !== '/metrics') return text(404, 'try /metrics, /healthz or /readyz\n');
    metrics.scrape().then(
      (body) => {
        response.writeHead(200, { 'content-type': metrics.contentType });
        response.end(body);
      },
      () => text(500, 'metrics could not be collected\n'),
    );
  });
  server.requestTimeout = REQUEST_DEADLINE_MS;
  server.headersTimeout = REQUEST_DEADLINE_MS;
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(fromSystemError(error, `metrics on ${host}:${port}`)));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shown}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
