/** Helpers for forward and chaos tests: the CLI forwarder, echo targets, peers that must exist. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { missing, type Running, sockit, waitForText, which } from '../raw/helpers.js';

/** A running `sockit forward|chaos` and the port it listens on. */
export interface Forwarding extends Running {
  port: number;
  address: string;
}

/** Starts `sockit forward|chaos ARGS…` with a private state dir and waits for its "listening on" line. */
export async function startForwarder(
  command: 'forward' | 'chaos',
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<Forwarding> {
  const running = sockit([command, ...args], { env, stdin: 'ignore' });
  const match = await waitForText(running, /listening on (\S+), forwarding/);
  const address = match[1]!.replace(/,$/, '');
  return { ...running, address, port: Number(/:(\d+)$/.exec(address)?.[1] ?? 0) };
}

/**
 * The path of a peer program, or undefined after skipping the test. Under CI=true a missing
 * peer fails the test instead: CI installs every one of them.
 */
export function peer(t: TestContext, program: string, debianPackage: string): string | undefined {
  const reason = missing(program, debianPackage);
  if (reason === undefined) return which(program);
  if (process.env.CI === 'true') throw new Error(reason);
  t.skip(reason);
  return undefined;
}

/** An in-process TCP echo server (half-close aware: it ends its side after the client's EOF). */
export async function echoServer(): Promise<{
  port: number;
  server: net.Server;
  close: () => Promise<void>;
}> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of connections(server)) socket.destroy();
      }),
  };
}

const tracked = new WeakMap<net.Server, Set<net.Socket>>();

function connections(server: net.Server): Set<net.Socket> {
  return tracked.get(server) ?? new Set();
}

/** Keeps the server's sockets so `close` can end them (a test's stopped reader holds one open). */
export function track(server: net.Server): void {
  const set = new Set<net.Socket>();
  tracked.set(server, set);
  server.on('connection', (socket) => {
    set.add(socket);
    socket.once('close', () => set.delete(socket));
  });
}

/** Sends `bytes` through a connection to `port`, ends, and resolves with everything that came back. */
export function echoThrough(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('error', reject);
    socket.once('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.end(bytes);
  });
}

/** Random bytes of a given size. */
export const payload = (size: number): Buffer => randomBytes(size);
