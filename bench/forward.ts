/**
 * The forward suite: `sockit forward` against socat and ncat as relays, in the same run, the
 * subjects interleaved round by round; each figure is the median of its rounds.
 *
 * - bulk: SOCKIT_BENCH_FORWARD_MIB (default 2048) MiB through one connection, sender → relay →
 *   sink, through `sockit forward` / `socat TCP-LISTEN:…,fork TCP:…` / `ncat -l -k -c 'ncat
 *   HOST PORT'` (ncat relays only by running a second ncat per connection), for
 *   SOCKIT_BENCH_FORWARD_RUNS (default 3) rounds. The sender and the sink are
 *   `lib/bulk-conns.c` (`lib/bulk-load.ts`), separate processes, the same for every relay: the
 *   sender sendfile()s from a memfd, the sink splices into /dev/null, so neither copies the
 *   bytes through user space and the relay is what limits the rate; no socket buffer sizes are
 *   forced. The time runs from the sender's connect to the sink's EOF (one system-wide
 *   clock); every byte is counted at the sink. CPU seconds per GiB are reported for the relay
 *   (its whole process tree), the sender and the sink apart, so the reader sees who is the
 *   bottleneck: on loopback the kernel's TCP work lands on whichever process sends into a
 *   socket, so a relay that moves pages by splice shifts some of it onto the sender.
 * - short connections: 8 loops of connect, 64 B up, 64 B echoed back, FIN both ways, close, for
 *   SOCKIT_BENCH_FORWARD_SECONDS (default 2) s per subject (at most 50 000 connections),
 *   through sockit and socat fork (ncat's process pair per connection is left out: it measures
 *   process start-up, not relaying), 3 rounds, and straight to the echo server (the machine's
 *   ceiling). The load (echo server, generator) is `lib/short-conns.c` (`lib/short-load.ts`);
 *   its CPU per connection is reported beside the relay's.
 *
 * Without a C compiler both loads run in this Node process instead, and a note says so.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { type BulkLoad, type BulkTransfer, startBulkLoad } from './lib/bulk-load.js';
import { freePort, waitListening } from './lib/ports.js';
import { treeCpuTimeMs } from './lib/proc.js';
import { SOCKIT_CLI } from './lib/servers.js';
import { type ShortLoad, startShortLoad } from './lib/short-load.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.SOCKIT_BENCH_FORWARD_MIB ?? 2048) * MiB;
const BULK_RUNS = Math.max(1, Number(process.env.SOCKIT_BENCH_FORWARD_RUNS ?? 3));
const SHORT_RUNS = 3;
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

/**
 * SOCKIT_BENCH_FORWARD_BASELINE_CLI: another build's `build/src/cli/main.js` (say, main's), run as
 * the subject `sockit baseline` beside this one, for before/after figures from the same run.
 */
const BASELINE_CLI = process.env.SOCKIT_BENCH_FORWARD_BASELINE_CLI;
const BASELINE = 'sockit baseline';

const sockitRelay = (name: string, cli: string): Relay => ({
  name,
  available: true,
  command: (port, target) => [
    process.execPath,
    [cli, 'forward', `127.0.0.1:${port}`, `127.0.0.1:${target}`, '-q', '-m', '1000'],
  ],
});

const RELAYS: Relay[] = [
  sockitRelay('sockit', SOCKIT_CLI),
  ...(BASELINE_CLI === undefined ? [] : [sockitRelay(BASELINE, BASELINE_CLI)]),
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

async function bulkOnce(relay: Relay, load: BulkLoad): Promise<BulkRun> {
  const running = await startRelay(relay, load.sinkPort);
  try {
    const cpuBefore = running.cpuMs();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${relay.name}: bulk run over ${BULK_TIMEOUT_MS} ms`)),
        BULK_TIMEOUT_MS,
      );
    });
    const transfer = await Promise.race([load.transfer(running.port, BULK_BYTES), timeout]);
    clearTimeout(timer);
    const relayCpuSeconds = (running.cpuMs() - cpuBefore) / 1000;
    if (transfer.bytes !== BULK_BYTES)
      throw new Error(`${relay.name} delivered ${transfer.bytes} of ${BULK_BYTES} bytes`);
    return { ...transfer, relayCpuSeconds };
  } finally {
    await running.stop();
  }
}

/** One bulk transfer through one relay, with every process's CPU. */
interface BulkRun extends BulkTransfer {
  relayCpuSeconds: number;
}

/** The run with the median rate (the middle one of an odd count). */
function medianBy<T>(runs: T[], value: (run: T) => number): T {
  const sorted = [...runs].sort((x, y) => value(x) - value(y));
  return sorted[Math.floor(sorted.length / 2)]!;
}

const GiB = 1024 * MiB;
const perGiB = (seconds: number): number => Number((seconds / (BULK_BYTES / GiB)).toFixed(3));

async function bulkCase(context: BenchContext, relays: Relay[]): Promise<void> {
  const load = await startBulkLoad();
  if (load.kind === 'node')
    context.note('no C compiler: the bulk sender and sink ran in Node and may limit the rate themselves');
  try {
    const runs = new Map<string, BulkRun[]>();
    for (let round = 0; round < BULK_RUNS; round++) {
      for (const relay of relays) {
        const list = runs.get(relay.name) ?? [];
        list.push(await bulkOnce(relay, load));
        runs.set(relay.name, list);
      }
    }
    const rates = new Map<string, number>();
    const cpuPerGiB = new Map<string, number>();
    for (const relay of relays) {
      const run = medianBy(runs.get(relay.name)!, (each) => BULK_BYTES / each.seconds);
      const rate = BULK_BYTES / MiB / run.seconds;
      rates.set(relay.name, rate);
      cpuPerGiB.set(relay.name, run.relayCpuSeconds / (BULK_BYTES / GiB));
      context.record({
        case: BULK_CASE,
        subject: relay.name,
        value: rate,
        unit: 'MiB/s',
        extra: {
          seconds: Number(run.seconds.toFixed(3)),
          'relay CPU s/GiB': perGiB(run.relayCpuSeconds),
          ...(load.kind === 'c'
            ? {
                'sender CPU s/GiB': perGiB(run.senderCpuSeconds),
                'sink CPU s/GiB': perGiB(run.sinkCpuSeconds),
              }
            : { 'sender + sink CPU s/GiB': perGiB(run.loadCpuSeconds) }),
          'all rounds MiB/s': runs
            .get(relay.name)!
            .map((each) => Math.round(BULK_BYTES / MiB / each.seconds))
            .join(' '),
        },
      });
    }
    if (rates.has(BASELINE)) {
      context.ratio({
        case: BULK_CASE,
        label: `sockit / ${BASELINE} MiB/s`,
        value: rates.get('sockit')! / rates.get(BASELINE)!,
      });
    }
    const peers = [...rates.entries()].filter(([name]) => name !== 'sockit' && name !== BASELINE);
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
    await load.close();
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
    const runs = new Map<string, ShortRun[]>();
    // The floor: the same loops straight to the echo server, no relay (what the machine allows).
    const directRates: number[] = [];
    for (let round = 0; round < SHORT_RUNS; round++) {
      directRates.push((await shortRate(load, load.echoPort)).rate);
      for (const relay of relays) {
        const list = runs.get(relay.name) ?? [];
        list.push(await shortOnce(relay, load));
        runs.set(relay.name, list);
      }
    }
    const direct = medianBy(directRates, (rate) => rate);
    const median = new Map([...runs].map(([name, list]) => [name, medianBy(list, (run) => run.rate)]));
    context.record({ case: SHORT_CASE, subject: 'direct (no relay)', value: direct, unit: 'conn/s' });
    for (const relay of relays) {
      const run = median.get(relay.name)!;
      context.record({
        case: SHORT_CASE,
        subject: relay.name,
        value: run.rate,
        unit: 'conn/s',
        extra: {
          'relay CPU µs/conn': Math.round(run.relayUs),
          'generator + echo CPU µs/conn': Math.round(run.generatorUs),
          'all rounds conn/s': runs
            .get(relay.name)!
            .map((each) => Math.round(each.rate))
            .join(' '),
        },
      });
    }
    const baseline = median.get(BASELINE);
    if (baseline !== undefined) {
      context.ratio({
        case: SHORT_CASE,
        label: `sockit / ${BASELINE} conn/s`,
        value: median.get('sockit')!.rate / baseline.rate,
      });
    }
    const socat = median.get('socat');
    if (socat !== undefined) {
      const sockit = median.get('sockit')!;
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
      `forward: medians of ${BULK_RUNS} bulk and ${SHORT_RUNS} short-connection rounds (subjects interleaved in each round); the loads are bench/lib/bulk-conns.c and bench/lib/short-conns.c when a C compiler is there`,
    );
  },
};
