import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { fromSystemError, SockitError } from '../errors.js';

/**
 * Parses a port list for `-z`: `80`, `20-25`, `22,80,8000-8010`. Ports are 1-65535; the result
 * is sorted and without duplicates.
 */
export function parsePortSpec(text: string): number[] {
  const ports = new Set<number>();
  for (const part of text.split(',')) {
    const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    if (!match)
      throw new SockitError('USAGE', `-z: "${part}" is not a port or range (e.g. 80, 20-25, 22,80)`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (first < 1 || last > 65_535 || first > last) {
      throw new SockitError('USAGE', `-z: "${part}" is outside 1-65535 or runs backwards`);
    }
    for (let port = first; port <= last; port++) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

/** Splits `HOST:PORTS` (`127.0.0.1:20-25`, `[::1]:22,80`, `tcp://host:80`) for `-z`. */
export function parseScanTarget(text: string): { host: string; ports: number[] } {
  const rest = text.replace(/^(tcp|tls):\/\//, '');
  const colon = rest.lastIndexOf(':');
  if (colon < 0) throw new SockitError('USAGE', `-z: "${text}" needs HOST:PORTS, e.g. 127.0.0.1:20-25`);
  let host = rest.slice(0, colon) || '127.0.0.1';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, ports: parsePortSpec(rest.slice(colon + 1)) };
}

export interface ScanResult {
  port: number;
  open: boolean;
  /** Why a closed port is closed: `refused`, `timeout`, or the system error code. */
  reason?: string;
}

export interface ScanOptions {
  /** Give up on one port after this long. Default 2000 ms. */
  timeoutMs?: number;
  /** Probes at once. Default 64, gentle on the target and on our file descriptors. */
  concurrency?: number;
  /** Called as each result is known (in completion order). */
  onResult?(result: ScanResult): void;
}

/**
 * `-z`: tries a TCP connection to each port and closes it at once, sending nothing.
 * Resolves with every result in port order. The host name is looked up once, first: a name
 * that does not resolve is one CONNECT_FAILED error, not every port "closed".
 */
export async function scanPorts(
  host: string,
  ports: readonly number[],
  options: ScanOptions = {},
): Promise<ScanResult[]> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const concurrency = Math.max(1, options.concurrency ?? 64);
  let ip = host;
  if (net.isIP(host) === 0) {
    try {
      ip = (await lookup(host)).address;
    } catch (error) {
      throw fromSystemError(error, `cannot scan ${host}`);
    }
  }
  const results: ScanResult[] = new Array(ports.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < ports.length) {
      const index = next++;
      const result = await probe(ip, ports[index]!, timeoutMs);
      results[index] = result;
      options.onResult?.(result);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ports.length) }, worker));
  return results;
}

function probe(host: string, port: number, timeoutMs: number): Promise<ScanResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ port, open: false, reason: 'timeout' });
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ port, open: true });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({
        port,
        open: false,
        reason: error.code === 'ECONNREFUSED' ? 'refused' : (error.code ?? error.message),
      });
    });
  });
}
