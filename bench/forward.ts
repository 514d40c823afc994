/**
 * The forward suite: `sockit forward` against socat and ncat as relays, in the same run.
 *
 * - bulk: SOCKIT_BENCH_FORWARD_MIB (default 2048) MiB through one connection, from an
 *   in-process sender (one reused 1 MiB buffer) to an in-process sink that reads into one reused
 *   buffer, through `sockit forward` / `socat TCP-LISTEN:…,fork TCP:…` / `ncat -l -k -c 'ncat
 *   HOST PORT'` (ncat relays only by running a second ncat per connection). Time from connect to
 *   the sink's EOF with every byte counted; best of SOCKIT_BENCH_FORWARD_RUNS (default 1:
 *   socat and ncat take 15-20 s for 2 GiB here, and the suite should stay near a minute).
 * - short connections: 8 loops of connect, 64 B up, 64 B echoed back, close, for
 *   SOCKIT_BENCH_FORWARD_SECONDS (default 2) s per subject (at most 50 000 connections),
 *   through sockit and socat fork (ncat's process pair per connection is left out: it measures
 *   process start-up, not relaying). Connections per second, best of two runs.
 *
 * The short-connection load (echo server, generator) is `lib/short-load.ts`: a small C program
 * when it compiles, its CPU per connection reported beside the relay's.
 * The relays are the other children; the bulk sender and sink live in this process,
 * the same for every subject.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { readIntoReusedBuffer } from '../src/transport/reused-buffer.js';
import { freePort, waitListening } from './lib/ports.js';
import { treeCpuTimeMs } from './lib/proc.js';
import { SOCKIT_CLI } from './lib/servers.js';
import { type ShortLoad, startShortLoad } from './lib/short-load.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.SOCKIT_BENCH_FORWARD_MIB ?? 2048) * MiB;
const BULK_RUNS = Math.max(1, Number(process.env.SOCKIT_BENCH_FORWARD_RUNS ?? 1));
const SHORT_RUNS = 2;
const SHORT_SECONDS = Number(process.env.SOCKIT_BENCH_FORWARD_SECONDS ?? 2);
const SHORT_LOOPS = 8;
const SHORT_MAX_CONNECTIONS = 50_000;
/** A bulk run slower than this is stopped: a stuck relay must not stall the benchmark. */
const BULK_TIMEOUT_MS = 90_000;

const BULK_CASE = `forward ${BULK_BYTES / MiB} MiB tcp → tcp`;
const SHORT_CASE = 'forward short connections (64 B each way)';

interface Relay {
  name: string;
  available: boolean;
  command(port: number, target: number): [string, string[]];
}

function have(program: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const RELAYS: Relay[] = [
  {
    name: 'sockit',
    available: true,
    command: (port, target) => [
      process.execPath,
      [SOCKIT_CLI, 'forward', `127.0.0.1:${port}`, `127.0.0.1:${target}`, '-q', '-m', '1000'],
    ],
  },
  {
    name: 'socat',
    available: have('socat'),
    command: (port, target) => [
      'socat',
      [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,backlog=1024`, `TCP:127.0.0.1:${target}`],
    ],
  },
  {
    name: 'ncat',
    available: have('ncat'),
    command: (port, target) => [
      'ncat',
      ['-l', '-k', '127.0.0.1', String(port), '-c', `ncat 127.0.0.1 ${target}`],
    ],
  },
];

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts a relay and waits until it listens. */
async function startRelay(
  relay: Relay,
  target: number,
): Promise<{ port: number; child: ChildProcess; cpuMs(): number; stop(): Promise<void> }> {
  const port = await freePort();
  const [command, args] = relay.command(port, target);
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 20_000) stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await waitListening(port, () => (child.exitCode !== null ? `${relay.name} exited: ${stderr}` : undefined));
  return {
    port,
    child,
    cpuMs: () => treeCpuTimeMs(child.pid!) ?? Number.NaN,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
      children.delete(child);
    },
  };
}

/** A sink that counts bytes per connection and reports each connection's total at its EOF. */
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

/** Sends `bytes` as fast as backpressure allows, then ends. */
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

async function bulkOnce(
  relay: Relay,
  sink: Awaited<ReturnType<typeof startSink>>,
): Promise<{ seconds: number; cpuSeconds: number; generatorCpuSeconds: number }> {
  const running = await startRelay(relay, sink.port);
  try {
    const cpuBefore = running.cpuMs();
    const ownBefore = process.cpuUsage();
    const started = performance.now();
    const received = sink.next();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${relay.name}: bulk run over ${BULK_TIMEOUT_MS} ms`)),
        BULK_TIMEOUT_MS,
      );
    });
    const [bytes] = await Promise.race([Promise.all([received, send(running.port, BULK_BYTES)]), timeout]);
    clearTimeout(timer);
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = (running.cpuMs() - cpuBefore) / 1000;
    const own = process.cpuUsage(ownBefore);
    if (bytes !== BULK_BYTES) throw new Error(`${relay.name} delivered ${bytes} of ${BULK_BYTES} bytes`);
    return { seconds, cpuSeconds, generatorCpuSeconds: (own.user + own.system) / 1e6 };
  } finally {
    await running.stop();
  }
}

async function bulkCase(context: BenchContext, relays: Relay[]): Promise<void> {
  const sink = await startSink();
  try {
    const best = new Map<string, Awaited<ReturnType<typeof bulkOnce>>>();
    for (let round = 0; round < BULK_RUNS; round++) {
      for (const relay of relays) {
        const run = await bulkOnce(relay, sink);
        const previous = best.get(relay.name);
        if (!previous || run.seconds < previous.seconds) best.set(relay.name, run);
      }
    }
    const rates = new Map<string, number>();
    const cpuPerGiB = new Map<string, number>();
    for (const relay of relays) {
      const run = best.get(relay.name)!;
      const rate = BULK_BYTES / MiB / run.seconds;
      rates.set(relay.name, rate);
      cpuPerGiB.set(relay.name, run.cpuSeconds / (BULK_BYTES / (1024 * MiB)));
      context.record({
        case: BULK_CASE,
        subject: relay.name,
        value: rate,
        unit: 'MiB/s',
        extra: {
          seconds: Number(run.seconds.toFixed(3)),
          'relay CPU s/GiB': Number(cpuPerGiB.get(relay.name)!.toFixed(3)),
          'sender + sink CPU s/GiB': Number(
            (run.generatorCpuSeconds / (BULK_BYTES / (1024 * MiB))).toFixed(3),
          ),
        },
      });
    }
    const peers = [...rates.entries()].filter(([name]) => name !== 'sockit');
    if (peers.length > 0) {
      const [name, fastest] = peers.reduce((a, b) => (b[1] > a[1] ? b : a));
      context.ratio({
        case: BULK_CASE,
        label: `sockit / ${name} (the faster peer) MiB/s`,
        value: rates.get('sockit')! / fastest,
        target: 1.5,
      });
      // On a shared machine wall time swings with the neighbours; CPU per GiB does not.
      context.ratio({
        case: BULK_CASE,
        label: `${name} / sockit relay CPU-seconds per GiB`,
        value: cpuPerGiB.get(name)! / cpuPerGiB.get('sockit')!,
      });
    }
  } finally {
    sink.close();
  }
}

/** Connections per second of SHORT_LOOPS loops of short connections to `port`, and the load's CPU. */
async function shortRate(
  load: ShortLoad,
  port: number,
): Promise<{ rate: number; connections: number; cpuUs: number }> {
  const run = await load.run(port, SHORT_LOOPS, SHORT_SECONDS, SHORT_MAX_CONNECTIONS);
  return { rate: run.connections / run.seconds, connections: run.connections, cpuUs: run.cpuUs };
}

/** One subject's short-connection run: its rate and the CPU it and the generator spent per connection. */
interface ShortRun {
  rate: number;
  /** CPU µs per connection: the relay's process tree, and this process (generator + echo server). */
  relayUs: number;
  generatorUs: number;
}

async function shortOnce(relay: Relay, load: ShortLoad): Promise<ShortRun> {
  const running = await startRelay(relay, load.echoPort);
  try {
    const relayBefore = running.cpuMs();
    const { rate, connections, cpuUs } = await shortRate(load, running.port);
    return {
      rate,
      relayUs: ((running.cpuMs() - relayBefore) * 1000) / connections,
      generatorUs: cpuUs / connections,
    };
  } finally {
    await running.stop();
  }
}

async function shortCase(context: BenchContext, relays: Relay[]): Promise<void> {
  const load = await startShortLoad();
  if (load.kind === 'node')
    context.note('no C compiler: the short-connection load ran in Node and costs about as much as the relay');
  try {
    const best = new Map<string, ShortRun>();
    // The floor: the same loops straight to the echo server, no relay (what the machine allows).
    let direct = 0;
    for (let round = 0; round < SHORT_RUNS; round++) {
      direct = Math.max(direct, (await shortRate(load, load.echoPort)).rate);
      for (const relay of relays) {
        const run = await shortOnce(relay, load);
        if (run.rate > (best.get(relay.name)?.rate ?? 0)) best.set(relay.name, run);
      }
    }
    context.record({ case: SHORT_CASE, subject: 'direct (no relay)', value: direct, unit: 'conn/s' });
    for (const relay of relays) {
      const run = best.get(relay.name)!;
      context.record({
        case: SHORT_CASE,
        subject: relay.name,
        value: run.rate,
        unit: 'conn/s',
        extra: {
          'relay CPU µs/conn': Math.round(run.relayUs),
          'generator + echo CPU µs/conn': Math.round(run.generatorUs),
        },
      });
    }
    const socat = best.get('socat');
    if (socat !== undefined) {
      const sockit = best.get('sockit')!;
      context.ratio({
        case: SHORT_CASE,
        label: 'sockit / socat fork conn/s',
        value: sockit.rate / socat.rate,
        target: 2,
      });
      context.ratio({
        case: SHORT_CASE,
        label: 'socat / sockit relay CPU per connection',
        value: socat.relayUs / sockit.relayUs,
      });
    }
  } finally {
    await load.close();
  }
}

export const forwardSuite: BenchSuite = {
  name: 'forward',
  async run(context) {
    for (const relay of RELAYS) {
      if (!relay.available)
        context.note(`${relay.name} is not installed (apt-get install ${relay.name}); skipped`);
    }
    const available = RELAYS.filter((relay) => relay.available);
    await bulkCase(context, available);
    await shortCase(
      context,
      available.filter((relay) => relay.name !== 'ncat'),
    );
    context.note(
      `forward: bulk best of ${BULK_RUNS}, short connections best of ${SHORT_RUNS} runs; bulk sender and sink run in the benchmark process, the short-connection load (echo server and generator) is bench/lib/short-conns.c when a C compiler is there`,
    );
  },
};
