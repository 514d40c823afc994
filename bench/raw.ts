/**
 * The raw suite (netcat mode), each case against its peers in the same run:
 *
 * - relay: a 2 GiB file (SOCKIT_BENCH_RAW_MIB) from tmpfs through `connect --send-only` → `listen --recv-only` to
 *   /dev/null, the canonical netcat file transfer, against `ncat --send-only` → `ncat -l
 *   --recv-only` and `socat -u` on both ends (all with their default buffer sizes). The time runs
 *   from starting the sending process to both processes' exit, so sockit's Node start-up
 *   (about 50 ms) is included.
 * - broker fan-out: one sender writes 64-byte records (a sequence number and filler) as fast as
 *   backpressure allows to `listen --broker`, and 50 receivers check every record arrives once
 *   and in order; against `ncat --broker` (socat has no broker). Messages delivered per second
 *   = 50 × records / time from the first write to the last record at the last receiver.
 *
 * Each subject runs SOCKIT_BENCH_RAW_RUNS times (default 3) and the best run counts: on a small
 * shared machine other work only ever slows a run down. SOCKIT_BENCH_RAW_MIB (default 2048) and
 * SOCKIT_BENCH_BROKER_RECORDS (default 1 000 000) change the sizes.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, existsSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitListening } from './lib/ports.js';
import { cpuTimeMs } from './lib/proc.js';
import { SOCKIT_CLI } from './lib/servers.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const RELAY_BYTES = Number(process.env.SOCKIT_BENCH_RAW_MIB ?? 2048) * MiB;
const RUNS = Math.max(1, Number(process.env.SOCKIT_BENCH_RAW_RUNS ?? 3));
const BROKER_RECORDS = Number(process.env.SOCKIT_BENCH_BROKER_RECORDS ?? 1_000_000);
const BROKER_RECEIVERS = 50;
const RECORD_BYTES = 64;
/** A run that takes longer than this is killed: a stuck peer must not stall the benchmark. */
const TIMEOUT_MS = 120_000;

const RELAY_CASE = `relay ${RELAY_BYTES / MiB} MiB connect → listen`;
const BROKER_CASE = `broker fan-out, 64 B records to ${BROKER_RECEIVERS} clients`;

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function have(program: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A port nobody listens on right now. */
/** For waitListening: why to stop waiting for a child that exited before it listened. */
function exitedEarly(child: Spawned): () => string | undefined {
  return () => (child.exited ? `listener exited before listening: ${child.stderr()}` : undefined);
}

interface Spawned {
  child: ChildProcess;
  done: Promise<number | null>;
  exited: boolean;
  stderr(): string;
}

/** Spawns with stdin from `input` (a path or /dev/null) and stdout to /dev/null. */
function launch(command: string, args: string[], input = '/dev/null'): Spawned {
  const inFd = openSync(input, 'r');
  const outFd = openSync('/dev/null', 'w');
  const child = spawn(command, args, { stdio: [inFd, outFd, 'pipe'] });
  closeSync(inFd);
  closeSync(outFd);
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 100_000) stderr += chunk.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  const spawned: Spawned = {
    child,
    exited: false,
    stderr: () => stderr,
    done: new Promise((resolve) => {
      child.once('close', (code) => {
        clearTimeout(timer);
        children.delete(child);
        spawned.exited = true;
        resolve(code);
      });
    }),
  };
  return spawned;
}

// ---- relay ---------------------------------------------------------------------------------

interface RelaySubject {
  name: string;
  available: boolean;
  listen(port: number): [string, string[]];
  connect(port: number): [string, string[]];
  /** Bytes the receiving side reported, when its output says (a check that nothing was lost). */
  received?(listenerStderr: string, connectorStderr: string): number | undefined;
}

const RELAY_SUBJECTS: RelaySubject[] = [
  {
    name: 'sockit',
    available: true,
    listen: (port) => [process.execPath, [SOCKIT_CLI, 'listen', `127.0.0.1:${port}`, '--recv-only', '-v']],
    connect: (port) => [process.execPath, [SOCKIT_CLI, 'connect', `127.0.0.1:${port}`, '--send-only']],
    received: (listener) => numberAfter(listener, /received (\d+) bytes/),
  },
  {
    name: 'ncat',
    available: have('ncat'),
    listen: (port) => ['ncat', ['-l', '--recv-only', '-v', '127.0.0.1', String(port)]],
    connect: (port) => ['ncat', ['--send-only', '-v', '127.0.0.1', String(port)]],
    // ncat's summary line is the sender's: "Ncat: N bytes sent, 0 bytes received in T seconds."
    received: (_listener, connector) => numberAfter(connector, /(\d+) bytes sent/),
  },
  {
    name: 'socat',
    available: have('socat'),
    listen: (port) => ['socat', ['-u', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, '-']],
    connect: (port) => ['socat', ['-u', '-', `TCP:127.0.0.1:${port}`]],
  },
];

function numberAfter(text: string, pattern: RegExp): number | undefined {
  const match = pattern.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** A file of `bytes` on tmpfs when it has room (the disk out of the picture), else in tmpdir. */
function createInput(bytes: number): string {
  let base = tmpdir();
  if (existsSync('/dev/shm')) {
    const stats = statfsSync('/dev/shm');
    if (stats.bavail * stats.bsize > bytes + 256 * MiB) base = '/dev/shm';
  }
  const path = join(base, `sockit-bench-raw-${process.pid}.bin`);
  const block = randomFillSync(Buffer.allocUnsafe(MiB));
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += block.length) {
      writeSync(fd, block, 0, Math.min(block.length, bytes - written));
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

async function relayOnce(
  subject: RelaySubject,
  input: string,
): Promise<{ seconds: number; received?: number }> {
  const port = await freePort();
  const [listenCommand, listenArgs] = subject.listen(port);
  const listener = launch(listenCommand, listenArgs);
  await waitListening(port, exitedEarly(listener));
  const started = performance.now();
  const [connectCommand, connectArgs] = subject.connect(port);
  const connector = launch(connectCommand, connectArgs, input);
  const [listenCode, connectCode] = await Promise.all([listener.done, connector.done]);
  const seconds = (performance.now() - started) / 1000;
  if (listenCode !== 0 || connectCode !== 0) {
    throw new Error(
      `${subject.name}: listener exited ${listenCode}, connector ${connectCode}: ${listener.stderr()} ${connector.stderr()}`,
    );
  }
  const received = subject.received?.(listener.stderr(), connector.stderr());
  return received === undefined ? { seconds } : { seconds, received };
}

async function relayCase(context: BenchContext): Promise<void> {
  const subjects = RELAY_SUBJECTS.filter((subject) => subject.available);
  for (const subject of RELAY_SUBJECTS) {
    if (!subject.available)
      context.note(`${subject.name} is not installed (apt-get install ${subject.name}); skipped`);
  }
  const input = createInput(RELAY_BYTES);
  try {
    const best = new Map<string, { seconds: number; received?: number }>();
    // Interleaved rounds: a burst of outside load hurts every subject alike.
    for (let round = 0; round < RUNS; round++) {
      for (const subject of subjects) {
        const run = await relayOnce(subject, input);
        if (run.received !== undefined && run.received !== RELAY_BYTES) {
          throw new Error(`${subject.name} delivered ${run.received} of ${RELAY_BYTES} bytes`);
        }
        const previous = best.get(subject.name);
        if (!previous || run.seconds < previous.seconds) best.set(subject.name, run);
      }
    }
    const rates = new Map<string, number>();
    for (const subject of subjects) {
      const run = best.get(subject.name)!;
      const rate = RELAY_BYTES / MiB / run.seconds;
      rates.set(subject.name, rate);
      context.record({
        case: RELAY_CASE,
        subject: subject.name,
        value: rate,
        unit: 'MiB/s',
        extra: {
          seconds: Number(run.seconds.toFixed(3)),
          checked: run.received === undefined ? 'exit codes' : 'byte count',
        },
      });
    }
    const peers = [...rates.entries()].filter(([name]) => name !== 'sockit');
    if (peers.length > 0) {
      const [fastestName, fastest] = peers.reduce((a, b) => (b[1] > a[1] ? b : a));
      context.ratio({
        case: RELAY_CASE,
        label: `sockit / ${fastestName} (the faster peer) MiB/s`,
        value: rates.get('sockit')! / fastest,
        target: 1.5,
      });
    }
    context.note(
      `relay: best of ${RUNS} runs per subject, ${RELAY_BYTES / MiB} MiB from tmpfs to /dev/null, process start included`,
    );
  } finally {
    rmSync(input, { force: true });
  }
}

// ---- broker --------------------------------------------------------------------------------

interface BrokerSubject {
  name: string;
  available: boolean;
  command(port: number): [string, string[]];
  /** Members the broker has registered, from its verbose output. */
  members(stderr: string): number;
}

const BROKER_SUBJECTS: BrokerSubject[] = [
  {
    name: 'sockit',
    available: true,
    command: (port) => [process.execPath, [SOCKIT_CLI, 'listen', `127.0.0.1:${port}`, '--broker', '-v']],
    members: (stderr) => stderr.match(/joined the broker/g)?.length ?? 0,
  },
  {
    name: 'ncat',
    available: have('ncat'),
    command: (port) => ['ncat', ['-l', '--broker', '-v', '127.0.0.1', String(port)]],
    // ncat -v says "Connection from 127.0.0.1." and then "… from 127.0.0.1:PORT." for each client.
    members: (stderr) => stderr.match(/Connection from [^\s]+:\d+\./g)?.length ?? 0,
  },
];

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ port, host: '127.0.0.1' });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * A receiving client: counts records and checks their sequence numbers run 0, 1, 2, … with none
 * missing. It reads into one reused buffer (Node's `onread`) and checks the first and last whole
 * record of every read: a broker forwards byte ranges, so a lost, repeated or reordered range
 * shows there. Checking every record, or a fresh Buffer per read, would make the 50 receivers,
 * not the broker, what is measured.
 */
function receiver(port: number, records: number): { connected: Promise<Socket>; done: Promise<void> } {
  let expected = 0;
  const carry = Buffer.alloc(RECORD_BYTES);
  let carried = 0;
  let settle!: { resolve: () => void; reject: (error: Error) => void };
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const fail = (found: number): boolean => {
    settle.reject(new Error(`record ${found} arrived where ${expected} was due (lost or reordered)`));
    socket.destroy();
    return false;
  };
  const onChunk = (length: number, buffer: Buffer): boolean => {
    let offset = 0;
    if (carried > 0) {
      const needed = Math.min(RECORD_BYTES - carried, length);
      buffer.copy(carry, carried, 0, needed);
      carried += needed;
      offset = needed;
      if (carried < RECORD_BYTES) return true;
      carried = 0;
      if (carry.readUInt32BE(0) !== expected) return fail(carry.readUInt32BE(0));
      expected++;
    }
    const whole = Math.floor((length - offset) / RECORD_BYTES);
    if (whole > 0) {
      const first = buffer.readUInt32BE(offset);
      const last = buffer.readUInt32BE(offset + (whole - 1) * RECORD_BYTES);
      if (first !== expected) return fail(first);
      if (last !== expected + whole - 1) return fail(last);
      expected += whole;
      offset += whole * RECORD_BYTES;
    }
    if (offset < length) {
      buffer.copy(carry, 0, offset, length);
      carried = length - offset;
    }
    if (expected === records) settle.resolve();
    return true;
  };
  const socket = tcpConnect({
    port,
    host: '127.0.0.1',
    onread: { buffer: Buffer.allocUnsafe(256 * 1024), callback: onChunk },
  });
  socket.once('close', () => {
    if (expected < records) settle.reject(new Error(`closed after ${expected} of ${records} records`));
  });
  done.catch(() => {});
  const connected = new Promise<Socket>((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
  return { connected, done };
}

async function send(socket: Socket, records: number): Promise<void> {
  const batch = 1024;
  for (let first = 0; first < records; first += batch) {
    const count = Math.min(batch, records - first);
    const buffer = Buffer.alloc(count * RECORD_BYTES, 0x2e);
    for (let i = 0; i < count; i++) buffer.writeUInt32BE(first + i, i * RECORD_BYTES);
    if (!socket.write(buffer)) await new Promise<void>((resolve) => socket.once('drain', resolve));
  }
}

async function brokerOnce(subject: BrokerSubject): Promise<{ seconds: number; cpuSeconds?: number }> {
  const port = await freePort();
  const [command, args] = subject.command(port);
  const broker = launch(command, args);
  const sockets: Socket[] = [];
  try {
    await waitListening(port, exitedEarly(broker));
    const sender = await dial(port);
    sockets.push(sender);
    const receivers = [];
    for (let i = 0; i < BROKER_RECEIVERS; i++) {
      const receiving = receiver(port, BROKER_RECORDS);
      sockets.push(await receiving.connected);
      receivers.push(receiving.done);
    }
    const deadline = Date.now() + 10_000;
    while (subject.members(broker.stderr()) < BROKER_RECEIVERS + 1) {
      if (Date.now() > deadline)
        throw new Error(`${subject.name}: clients not registered: ${broker.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    sender.on('data', () => {}); // a broker never sends our own bytes back, but read anyway
    const cpuBefore = cpuTimeMs(broker.child.pid!);
    const started = performance.now();
    await send(sender, BROKER_RECORDS);
    await Promise.all(receivers);
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = cpuTimeMs(broker.child.pid!);
    return cpuBefore === undefined || cpuAfter === undefined
      ? { seconds }
      : { seconds, cpuSeconds: (cpuAfter - cpuBefore) / 1000 };
  } finally {
    for (const socket of sockets) socket.destroy();
    broker.child.kill('SIGTERM');
    await broker.done;
  }
}

async function brokerCase(context: BenchContext): Promise<void> {
  const subjects = BROKER_SUBJECTS.filter((subject) => subject.available);
  if (!have('ncat')) context.note('ncat is not installed (apt-get install ncat); broker has no peer');
  const best = new Map<string, { seconds: number; cpuSeconds?: number }>();
  for (let round = 0; round < RUNS; round++) {
    for (const subject of subjects) {
      const run = await brokerOnce(subject);
      const previous = best.get(subject.name);
      if (!previous || run.seconds < previous.seconds) best.set(subject.name, run);
    }
  }
  const rates = new Map<string, number>();
  for (const subject of subjects) {
    const { seconds, cpuSeconds } = best.get(subject.name)!;
    const rate = (BROKER_RECEIVERS * BROKER_RECORDS) / seconds;
    rates.set(subject.name, rate);
    context.record({
      case: BROKER_CASE,
      subject: subject.name,
      value: rate,
      unit: 'msgs/s',
      extra: {
        seconds: Number(seconds.toFixed(3)),
        'MiB/s delivered': Number(((rate * RECORD_BYTES) / MiB).toFixed(1)),
        'broker CPU s': cpuSeconds === undefined ? 'n/a' : Number(cpuSeconds.toFixed(2)),
        lost: 0,
      },
    });
  }
  if (rates.has('ncat')) {
    context.ratio({
      case: BROKER_CASE,
      label: 'sockit / ncat --broker msgs/s',
      value: rates.get('sockit')! / rates.get('ncat')!,
      target: 1.0,
    });
  }
  context.note(
    `broker: ${BROKER_RECORDS} records from one sender; all ${BROKER_RECEIVERS} receivers count them and check ` +
      `the sequence at every chunk edge (a loss or reorder fails the run); best of ${RUNS}; socat has no broker mode`,
  );
}

export const rawSuite: BenchSuite = {
  name: 'raw',
  async run(context) {
    await relayCase(context);
    await brokerCase(context);
  },
};
