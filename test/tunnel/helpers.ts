/** Helpers for the tunnel tests: a server with the tunnel service, the CLI tunnel, many streams at once. */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { TUNNEL_WINDOW } from '../../src/protocol/tunnel.js';
import type { ServeOptions } from '../../src/server/server.js';
import { tunnelService } from '../../src/services/tunnel/index.js';
import { echoThrough, payload } from '../forward/helpers.js';
import { startServer, TEST_TOKEN, tempDir } from '../helpers.js';
import { type Running, sockit, waitForText } from '../raw/helpers.js';

/** A server on `listen` with the tunnel service reaching `allow`. */
export async function startTunnelServer(
  allow: string[],
  options: { remote?: boolean; listen?: string } = {},
  serveOptions: Partial<ServeOptions> = {},
) {
  const service = tunnelService({ allow, remote: options.remote === true });
  const started = await startServer({
    services: [service],
    ...(options.listen ? { listen: options.listen } : {}),
    ...serveOptions,
  });
  return { ...started, service };
}

/** A running `sockit tunnel` and the ports its listeners got, in the order of its lines. */
export interface RunningTunnel extends Running {
  local: number[];
  socks: number[];
  remote: number[];
}

/** Starts `sockit tunnel ADDRESS ARGS…` with the test token and waits until every listener is up. */
export async function startTunnel(
  address: string,
  args: string[],
  stateDir: string,
  env: NodeJS.ProcessEnv = {},
): Promise<RunningTunnel> {
  const home = await tempDir('sockit-home-');
  const running = sockit(['tunnel', address, '--state-dir', stateDir, ...args], {
    env: { SOCKIT_TOKEN: TEST_TOKEN, HOME: home.path, ...env },
    stdin: 'ignore',
  });
  running.exited.then(() => home.cleanup());
  const count = args.filter((arg) => /^-[LRD]$/.test(arg)).length;
  await waitForText(running, new RegExp(`(listening on [^\\n]*\\n[^]*){${count}}`));
  const ports = (pattern: RegExp): number[] =>
    [...running.stderr().matchAll(pattern)].map((match) => Number(match[1]));
  return {
    ...running,
    local: ports(/-L listening on \S+:(\d+) /g),
    socks: ports(/-D SOCKS5 listening on \S+:(\d+) /g),
    remote: ports(/-R listening on the server at \S+:(\d+) /g),
  };
}

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Opens `count` streams to an echo through `port` at once, each sending `size` bytes; the first
 * stream's reader is stopped. Resolves once the other streams came back byte-exact, reporting
 * how much the stopped one had received by then; then `resume()` lets it finish and checks it.
 */
export async function stalledStreams(
  port: number,
  count: number,
  size: number,
): Promise<{ others: number; stalledEnded: boolean; resume: () => Promise<boolean> }> {
  const stalled = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  // More than every buffer on the way (kernel, window): its echo really backs up through the
  // tunnel. Tied to the window, so a larger default window cannot quietly make the stall vanish.
  const stalledSent = payload(4 * TUNNEL_WINDOW);
  let stalledEnded = false;
  stalled.once('end', () => {
    stalledEnded = true;
  });
  const stalledChunks: Buffer[] = [];
  stalled.pause();
  stalled.on('error', () => {});
  stalled.write(stalledSent);
  const echo = async (bytes: Buffer): Promise<boolean> => sha(await echoThrough(port, bytes)) === sha(bytes);
  const results = await Promise.all(Array.from({ length: count - 1 }, () => echo(payload(size))));
  return {
    others: results.filter(Boolean).length,
    stalledEnded,
    resume: () =>
      new Promise((resolve) => {
        stalled.on('data', (chunk: Buffer) => stalledChunks.push(chunk));
        stalled.once('end', () => {
          stalled.end();
          resolve(sha(Buffer.concat(stalledChunks)) === sha(stalledSent));
        });
        stalled.end();
        stalled.resume();
      }),
  };
}
