/**
 * The forward suite's short-connection load: an echo server and LOOPS loops of connect, 64 B up,
 * 64 B back, close. Built from `bench/lib/short-conns.c` with the system's C compiler when there
 * is one (it costs a few tens of µs per connection, a Node socket per connection about as much
 * as the relay it measures); otherwise the same load in this Node process.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { compileLoadProgram } from './c-program.js';
import { startServerChild } from './children.js';
import { treeCpuTimeMs } from './proc.js';

const run = promisify(execFile);
const MESSAGE_BYTES = 64;

/** A finished run of the load. */
export interface ShortLoadRun {
  connections: number;
  seconds: number;
}

/** The echo server and the generator, and the CPU both spend. */
export interface ShortLoad {
  /** `c` (the compiled program) or `node` (the fallback in this process). */
  readonly kind: 'c' | 'node';
  readonly echoPort: number;
  /** Runs `loops` loops against `port` for `seconds` (at most `max` connections). */
  run(port: number, loops: number, seconds: number, max: number): Promise<ShortLoadRun & { cpuUs: number }>;
  close(): Promise<void>;
}

/** Starts the load's echo server: the C one when it compiles, else one in this process. */
export async function startShortLoad(): Promise<ShortLoad> {
  const binary = compileLoadProgram('short-conns');
  return binary === undefined ? nodeLoad() : cLoad(binary);
}

async function cLoad(binary: string): Promise<ShortLoad> {
  const echo = await startServerChild({
    name: 'short-conns echo',
    command: binary,
    args: ['echo'],
    readyPattern: /^port (\d+)/,
  });
  return {
    kind: 'c',
    echoPort: echo.port,
    async run(port, loops, seconds, max) {
      const echoBefore = treeCpuTimeMs(echo.pid) ?? 0;
      const { stdout } = await run(binary, [
        'client',
        String(port),
        String(loops),
        String(seconds),
        String(max),
      ]);
      const match = /connections (\d+) seconds ([\d.]+) cpu_us (\d+)/.exec(stdout);
      if (match === null) throw new Error(`short-conns printed ${JSON.stringify(stdout)}`);
      const echoUs = ((treeCpuTimeMs(echo.pid) ?? 0) - echoBefore) * 1000;
      return { connections: Number(match[1]), seconds: Number(match[2]), cpuUs: Number(match[3]) + echoUs };
    },
    close: () => echo.stop(),
  };
}

async function nodeLoad(): Promise<ShortLoad> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 1024 }, resolve));
  const message = Buffer.alloc(MESSAGE_BYTES, 0x62);
  return {
    kind: 'node',
    echoPort: (server.address() as net.AddressInfo).port,
    async run(port, loops, seconds, max) {
      const before = process.cpuUsage();
      let done = 0;
      const started = performance.now();
      const deadline = started + seconds * 1000;
      const loop = async (): Promise<void> => {
        while (performance.now() < deadline && done < max) {
          await shortConnection(port, message);
          done++;
        }
      };
      await Promise.all(Array.from({ length: loops }, loop));
      const cpu = process.cpuUsage(before);
      return {
        connections: done,
        seconds: (performance.now() - started) / 1000,
        cpuUs: cpu.user + cpu.system,
      };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** One short connection: connect, 64 B up, the 64 B back, EOF both ways. */
function shortConnection(port: number, message: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.once('error', reject);
    socket.once('end', () => {
      socket.end();
      if (received === message.length) resolve();
      else reject(new Error(`short connection got ${received} of ${message.length} bytes back`));
    });
    socket.once('connect', () => socket.end(message));
  });
}
