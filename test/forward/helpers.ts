/** Helpers for forward and chaos tests: the CLI forwarder, echo targets, peers that must exist. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { killAll, type Running, sockit, waitForText } from '../raw/helpers.js';

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

/** What a forward, chaos or proxy suite shares: a temp dir, the CLI's private env, an echo target. */
export interface ForwardTestBed {
  dir: Awaited<ReturnType<typeof tempDir>>;
  /** SOCKIT_STATE_DIR and HOME inside `dir`, for the spawned CLI. */
  env: NodeJS.ProcessEnv;
  echo: Awaited<ReturnType<typeof echoServer>>;
}

/** Makes a suite's test bed (call it in `before`). */
export async function forwardTestBed(prefix: string): Promise<ForwardTestBed> {
  const dir = await tempDir(prefix);
  return {
    dir,
    env: { SOCKIT_STATE_DIR: join(dir.path, 'state'), HOME: dir.path },
    echo: await echoServer(),
  };
}

/** Stops every CLI the suite spawned, the echo target and removes the dir (call it in `after`). */
export async function closeTestBed(bed: Pick<ForwardTestBed, 'dir' | 'echo'>): Promise<void> {
  await killAll();
  await bed.echo.close();
  await bed.dir.cleanup();
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

/**
 * A small SOCKS5 server (RFC 1928, no authentication, CONNECT only) that records what it was
 * asked for. `refuse` answers every CONNECT with that reply code instead.
 */
export async function socks5Server(
  refuse?: number,
): Promise<{ port: number; asked: string[]; close: () => void }> {
  const asked: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    client.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let stage: 'hello' | 'request' | 'relay' = 'hello';
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (stage === 'hello' && buffered.length >= 2 && buffered.length >= 2 + buffered[1]!) {
        buffered = buffered.subarray(2 + buffered[1]!);
        client.write(Buffer.from([5, 0]));
        stage = 'request';
      }
      if (stage !== 'request' || buffered.length < 5) return;
      const type = buffered[3];
      const length = type === 1 ? 4 : type === 4 ? 16 : 1 + buffered[4]!;
      if (buffered.length < 4 + length + 2) return;
      const host =
        type === 1
          ? [...buffered.subarray(4, 8)].join('.')
          : type === 3
            ? buffered.subarray(5, 5 + buffered[4]!).toString()
            : 'ipv6';
      const port = buffered.readUInt16BE(4 + length);
      asked.push(`${host}:${port}`);
      const rest = buffered.subarray(4 + length + 2);
      stage = 'relay';
      client.off('data', onData);
      client.pause(); // until the upstream is there; pipe() resumes it
      if (refuse !== undefined) {
        client.end(Buffer.from([5, refuse, 0, 1, 0, 0, 0, 0, 0, 0]));
        return;
      }
      const upstream = net.connect(
        { host: host === 'localhost' ? '127.0.0.1' : host, port, allowHalfOpen: true },
        () => {
          client.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
          if (rest.length > 0) upstream.write(rest);
          client.pipe(upstream);
          upstream.pipe(client);
        },
      );
      upstream.on('error', () => client.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])));
    };
    client.on('data', onData);
  });
  track(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, asked, close: () => server.close() };
}
