/**
 * The forward suite's bulk load: a sink that takes one connection's bytes to its EOF and a
 * sender that sends N bytes and ends. Built from `bench/lib/bulk-conns.c` when there is a C
 * compiler (sendfile from a memfd, splice into /dev/null: a few tenths of a CPU-second per GiB
 * between them, so the relay in the middle is what limits the rate); otherwise both run in this
 * Node process (one reused buffer each way), where on 2 cores they limit the rate themselves.
 * The tunnel suite uses the Node pair (`startSink`, `send`) too.
 */
import { execFile, spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { readIntoReusedBuffer } from '../../src/transport/reused-buffer.js';
import { compileLoadProgram } from './c-program.js';
import { killOnExit } from './children.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** One transfer through a relay: its time and what the two ends spent on it. */
export interface BulkTransfer {
  /** Connect to the last byte at the sink. */
  seconds: number;
  /** Bytes the sink counted before its EOF. */
  bytes: number;
  /** CPU seconds of the sender and of the sink for this transfer (NaN: not separable). */
  senderCpuSeconds: number;
  sinkCpuSeconds: number;
  /** Sender and sink together (the Node pair shares this process). */
  loadCpuSeconds: number;
}

/** The sink (listening) and a way to send through a relay into it. */
export interface BulkLoad {
  /** `c` (bulk-conns.c) or `node` (both ends in this process). */
  readonly kind: 'c' | 'node';
  readonly sinkPort: number;
  /** Sends `bytes` to `port` (a relay in front of the sink) and waits for the sink's EOF. */
  transfer(port: number, bytes: number): Promise<BulkTransfer>;
  close(): Promise<void>;
}

/** Starts the bulk sink: the C one when it compiles, else one in this process. */
export async function startBulkLoad(): Promise<BulkLoad> {
  const binary = compileLoadProgram('bulk-conns');
  return binary === undefined ? nodeBulkLoad() : cBulkLoad(binary);
}

async function cBulkLoad(binary: string): Promise<BulkLoad> {
  const sink = spawn(binary, ['sink'], { stdio: ['ignore', 'pipe', 'inherit'] });
  killOnExit(sink);
  const exited = new Promise<void>((resolve) => sink.once('exit', () => resolve()));
  const lines: string[] = [];
  const waiting: (() => void)[] = [];
  createInterface({ input: sink.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const wake of waiting.splice(0)) wake();
  });
  const nextLine = async (pattern: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const index = lines.findIndex((line) => pattern.test(line));
      if (index >= 0) return pattern.exec(lines.splice(index, 1)[0]!)!;
      if (sink.exitCode !== null) throw new Error(`bulk-conns sink exited (${sink.exitCode})`);
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  };
  const sinkPort = Number((await nextLine(/^port (\d+)/))[1]);
  return {
    kind: 'c',
    sinkPort,
    async transfer(port, bytes) {
      const { stdout } = await run(binary, ['send', String(port), String(bytes)]);
      const started = /start ([\d.]+)/.exec(stdout);
      const sent = /sent (\d+) cpu_us (\d+)/.exec(stdout);
      if (started === null || sent === null) throw new Error(`bulk-conns send printed ${stdout}`);
      // A relay connects to the sink for every client, so only transfers of `bytes` count
      // (a relay's own readiness probe would be an empty one).
      const eof = await nextLine(new RegExp(`^eof ([\\d.]+) bytes ${bytes} cpu_us (\\d+)`));
      const senderCpuSeconds = Number(sent[2]) / 1e6;
      const sinkCpuSeconds = Number(eof[2]) / 1e6;
      return {
        seconds: Number(eof[1]) - Number(started[1]),
        bytes,
        senderCpuSeconds,
        sinkCpuSeconds,
        loadCpuSeconds: senderCpuSeconds + sinkCpuSeconds,
      };
    },
    async close() {
      sink.kill('SIGKILL');
      await exited;
    },
  };
}

async function nodeBulkLoad(): Promise<BulkLoad> {
  const sink = await startSink();
  return {
    kind: 'node',
    sinkPort: sink.port,
    async transfer(port, bytes) {
      const before = process.cpuUsage();
      const started = performance.now();
      const [received] = await Promise.all([sink.next(), send(port, bytes)]);
      const seconds = (performance.now() - started) / 1000;
      const own = process.cpuUsage(before);
      return {
        seconds,
        bytes: received,
        senderCpuSeconds: Number.NaN,
        sinkCpuSeconds: Number.NaN,
        loadCpuSeconds: (own.user + own.system) / 1e6,
      };
    },
    async close() {
      sink.close();
    },
  };
}

/** A sink in this process that counts bytes per connection and reports each total at its EOF. */
export async function startSink(): Promise<{ port: number; next(): Promise<number>; close(): void }> {
  const waiting: ((bytes: number) => void)[] = [];
  const server = net.createServer((socket) => {
    let bytes = 0;
    const buffer = Buffer.allocUnsafe(256 * 1024);
    const count = (chunk: Buffer): boolean => {
      bytes += chunk.length;
      return true;
    };
    if (!readIntoReusedBuffer(socket, buffer, count)) {
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
    }
    socket.on('error', () => {});
    socket.once('end', () => {
      socket.end();
      waiting.shift()?.(bytes);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => new Promise((resolve) => waiting.push(resolve)),
    close: () => server.close(),
  };
}

/** Sends `bytes` from this process as fast as backpressure allows (one reused 1 MiB buffer), then ends. */
export function send(port: number, bytes: number): Promise<void> {
  const block = Buffer.alloc(MiB, 0x61);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const size = Math.min(left, block.length);
        left -= size;
        if (!socket.write(size === block.length ? block : block.subarray(0, size))) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    socket.once('connect', pump);
    socket.once('error', reject);
    socket.once('close', () => resolve());
    socket.resume();
  });
}
