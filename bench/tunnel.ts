/**
 * The tunnel suite: `sockit tunnel -L` over tls:// against `ssh -L` through an sshd on loopback,
 * in the same run.
 *
 * - bulk: SOCKIT_BENCH_TUNNEL_MIB (default 1024) MiB through the tunnel, in BULK_ROUNDS
 *   tunnelled connections one after the other, from the forward suite's in-process sender to its
 *   in-process sink. sshd (/usr/sbin/sshd) is started here on a free port with a generated host
 *   key and user key in a temp dir, cipher aes128-gcm@openssh.com; sockit serves tls:// with its
 *   self-signed certificate.
 * - 20 streams at once, SOCKIT_BENCH_TUNNEL_STREAM_MIB (default 25) MiB each in all: aggregate
 *   MiB/s and fairness (the slowest stream's rate / the fastest's) for both.
 *
 * Both tunnels stay open for the whole suite and take turns, round by round (the exec suite's
 * method): a machine that speeds up or slows down mid-run affects both alike.
 *
 * sshd comes from bench/lib/sshd.ts (a private one on a free port, keys in a temp dir).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { send, startSink } from './lib/bulk-load.js';
import { removeOnExit, type StartServerOptions, startServerChild } from './lib/children.js';
import { freePort } from './lib/ports.js';
import { treeCpuTimeMs } from './lib/proc.js';
import { SOCKIT_CLI } from './lib/servers.js';
import { hasSshd, startSshd } from './lib/sshd.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.SOCKIT_BENCH_TUNNEL_MIB ?? 1024) * MiB;
const STREAMS = 20;
const STREAM_BYTES = Number(process.env.SOCKIT_BENCH_TUNNEL_STREAM_MIB ?? 25) * MiB;

/** The bulk bytes go in this many alternating transfers per subject, the 20 streams in MANY_ROUNDS. */
const BULK_ROUNDS = 4;
/** Bytes each subject moves before the measured rounds. */
const WARMUP_BYTES = 64 * MiB;
const MANY_ROUNDS = 2;
const SOCKIT = 'sockit tunnel -L (tls://)';
const SSH = 'ssh -L (aes128-gcm)';
const NODE_FLOOR = 'Node floor: net ↔ tls pipe, a TLS connection per stream';
const TLS_PIPE = fileURLToPath(new URL('./lib/tls-pipe.js', import.meta.url));

const BULK_CASE = `tunnel -L ${BULK_BYTES / MiB} MiB (sockit over tls://, ssh aes128-gcm)`;
const MANY_CASE = `tunnel -L ${STREAMS} streams × ${STREAM_BYTES / MiB} MiB`;

/** A tunnel entrance: a local port whose connections come out at `target`, and its children. */
interface Tunnel {
  port: number;
  /** CPU milliseconds each end (server, client; their children included) used so far. */
  cpuMs(): [server: number, client: number];
  stop(): Promise<void>;
}

/** CPU time of the server's and the client's process trees, for `Tunnel.cpuMs`. */
function cpuOf(server: number, client: number): () => [number, number] {
  return () => [treeCpuTimeMs(server) ?? Number.NaN, treeCpuTimeMs(client) ?? Number.NaN];
}

/**
 * A tunnel of two children: the server end, then the client end started against its port (its
 * own port is the tunnel's entrance); a client that fails to start stops the server too.
 */
async function startTunnel(
  server: StartServerOptions,
  client: (serverPort: number) => StartServerOptions,
): Promise<Tunnel> {
  const serverChild = await startServerChild(server);
  try {
    const clientChild = await startServerChild(client(serverChild.port));
    return {
      port: clientChild.port,
      cpuMs: cpuOf(serverChild.pid, clientChild.pid),
      stop: async () => {
        await clientChild.stop();
        await serverChild.stop();
      },
    };
  } catch (error) {
    await serverChild.stop();
    throw error;
  }
}

async function sockitTunnel(dir: string, target: number): Promise<Tunnel> {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'bench-token-not-secret\n', { mode: 0o600 });
  const env = { SOCKIT_STATE_DIR: dir, HOME: dir };
  return startTunnel(
    {
      name: 'sockit serve (tunnel)',
      command: process.execPath,
      args: [
        SOCKIT_CLI,
        'serve',
        'tls://127.0.0.1:0',
        '--token-file',
        tokenFile,
        '--state-dir',
        dir,
        '--log-level',
        'warn',
        '--tunnel-allow',
        `127.0.0.1:${target}`,
      ],
      readyPattern: /tls:\/\/127\.0\.0\.1:(\d+)/,
      env,
    },
    (serverPort) => ({
      name: 'sockit tunnel',
      command: process.execPath,
      args: [
        SOCKIT_CLI,
        'tunnel',
        `tls://127.0.0.1:${serverPort}`,
        '--token-file',
        tokenFile,
        '--state-dir',
        dir,
        '-L',
        `0:127.0.0.1:${target}`,
      ],
      readyPattern: /-L listening on \S+:(\d+) /,
      env,
    }),
  );
}

/** bench/lib/tls-pipe.ts at both ends: a tunnel with Node's TLS and streams and no protocol. */
function nodeFloorTunnel(_dir: string, target: number): Promise<Tunnel> {
  const ready = /^listening (\d+)$/m;
  return startTunnel(
    {
      name: 'tls-pipe server',
      command: process.execPath,
      args: [TLS_PIPE, 'server', String(target)],
      readyPattern: ready,
    },
    (serverPort) => ({
      name: 'tls-pipe client',
      command: process.execPath,
      args: [TLS_PIPE, 'client', String(serverPort)],
      readyPattern: ready,
    }),
  );
}

async function sshTunnel(_dir: string, target: number): Promise<Tunnel> {
  const sshd = await startSshd({
    config: ['AllowTcpForwarding yes', 'Ciphers aes128-gcm@openssh.com'],
  });
  try {
    const local = await freePort();
    const ssh = await startServerChild({
      name: 'ssh -L',
      command: 'ssh',
      args: [
        '-v',
        // -v (its "listening" line says when the forward is up) instead of the quiet LogLevel.
        ...withoutOption(sshd.sshArgs, 'LogLevel=ERROR'),
        '-o',
        'Ciphers=aes128-gcm@openssh.com',
        '-o',
        'ExitOnForwardFailure=yes',
        '-N',
        '-L',
        `127.0.0.1:${local}:127.0.0.1:${target}`,
        '127.0.0.1',
      ],
      env: sshd.env,
      readyPattern: /Local forwarding listening on 127\.0\.0\.1 port (\d+)/,
    });
    return {
      port: ssh.port,
      cpuMs: cpuOf(sshd.pid, ssh.pid),
      stop: async () => {
        await ssh.stop();
        await sshd.stop();
      },
    };
  } catch (error) {
    await sshd.stop();
    throw error;
  }
}

type Sink = Awaited<ReturnType<typeof startSink>>;

/** Sends `streams` connections of `bytes` each at once: seconds for all and for each, CPU ms per end. */
async function transfer(tunnel: Tunnel, sink: Sink, streams: number, bytes: number) {
  const cpuBefore = tunnel.cpuMs();
  const started = performance.now();
  const received = Promise.all(Array.from({ length: streams }, () => sink.next()));
  const each = await Promise.all(
    Array.from({ length: streams }, async () => {
      await send(tunnel.port, bytes);
      return (performance.now() - started) / 1000;
    }),
  );
  const totals = await received;
  const seconds = (performance.now() - started) / 1000;
  if (totals.some((total) => total !== bytes))
    throw new Error(`delivered ${totals.join(',')} of ${bytes} bytes each`);
  const cpuAfter = tunnel.cpuMs();
  return {
    seconds,
    each,
    serverMs: cpuAfter[0] - cpuBefore[0],
    clientMs: cpuAfter[1] - cpuBefore[1],
  };
}

/** One subject's tunnel with its own sink and state dir, open for the whole suite. */
interface Subject {
  name: string;
  tunnel: Tunnel;
  sink: Sink;
  close(): Promise<void>;
}

async function openSubject(
  name: string,
  open: (dir: string, target: number) => Promise<Tunnel>,
): Promise<Subject> {
  const dir = mkdtempSync(join(tmpdir(), 'sockit-bench-tunnel-'));
  removeOnExit(dir);
  const sink = await startSink();
  try {
    const tunnel = await open(dir, sink.port);
    return {
      name,
      tunnel,
      sink,
      async close() {
        await tunnel.stop();
        sink.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    sink.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** What a subject moved over its rounds: bytes, seconds, CPU ms per end, each stream's seconds. */
interface Totals {
  bytes: number;
  seconds: number;
  server: number;
  client: number;
  each: number[];
}

/**
 * Runs `rounds` transfers per subject, alternating which goes first, and sums each subject's:
 * the machine's speed drifts from one second to the next (neighbours, CPU frequency), and one
 * long transfer each, one after the other, would hand the drift to one subject.
 */
async function alternate(
  subjects: Subject[],
  rounds: number,
  streams: number,
  bytes: number,
): Promise<Totals[]> {
  const totals = subjects.map(() => ({ bytes: 0, seconds: 0, server: 0, client: 0, each: [] as number[] }));
  for (let round = 0; round < rounds; round++) {
    const order = subjects.map((_, index) => index);
    if (round % 2 === 1) order.reverse();
    for (const index of order) {
      const { tunnel, sink } = subjects[index]!;
      const done = await transfer(tunnel, sink, streams, bytes);
      const total = totals[index]!;
      total.bytes += streams * bytes;
      total.seconds += done.seconds;
      total.server += done.serverMs;
      total.client += done.clientMs;
      total.each.push(...done.each);
    }
  }
  return totals;
}

/** CPU seconds per GiB moved. */
const perGiB = (ms: number, bytes: number): number => Number((ms / 1000 / (bytes / (1024 * MiB))).toFixed(3));

function recordBulk(context: BenchContext, subject: string, total: Totals): { rate: number; cpu: number } {
  const rate = total.bytes / MiB / total.seconds;
  const server = perGiB(total.server, total.bytes);
  const client = perGiB(total.client, total.bytes);
  const cpu = Number((server + client).toFixed(3));
  context.record({
    case: BULK_CASE,
    subject,
    value: rate,
    unit: 'MiB/s',
    extra: {
      seconds: Number(total.seconds.toFixed(3)),
      'CPU s/GiB (both ends)': cpu,
      'server / client CPU s/GiB': `${server} / ${client}`,
    },
  });
  return { rate, cpu };
}

function recordMany(context: BenchContext, subject: string, total: Totals, rounds: number): number {
  const rate = total.bytes / MiB / total.seconds;
  // Fairness within each round (its streams started together), the worst round's.
  let fairness = 1;
  for (let round = 0; round < rounds; round++) {
    const each = total.each.slice(round * STREAMS, (round + 1) * STREAMS);
    fairness = Math.min(fairness, Math.min(...each) / Math.max(...each));
  }
  context.record({
    case: MANY_CASE,
    subject,
    value: rate,
    unit: 'MiB/s aggregate',
    extra: {
      fairness: Number(fairness.toFixed(3)),
      'CPU s/GiB (both ends)': Number(
        (perGiB(total.server, total.bytes) + perGiB(total.client, total.bytes)).toFixed(3),
      ),
    },
  });
  context.record({
    case: `${MANY_CASE} fairness (fastest time / slowest time)`,
    subject,
    value: fairness,
    unit: 'ratio',
  });
  return rate;
}

/** `args` without the pair `-o OPTION`. */
function withoutOption(args: readonly string[], option: string): string[] {
  const at = args.indexOf(option);
  return at > 0 && args[at - 1] === '-o' ? [...args.slice(0, at - 1), ...args.slice(at + 1)] : [...args];
}

export const tunnelSuite: BenchSuite = {
  name: 'tunnel',
  async run(context) {
    const subjects: Subject[] = [];
    try {
      subjects.push(await openSubject(SOCKIT, sockitTunnel));
      subjects.push(await openSubject(NODE_FLOOR, nodeFloorTunnel));
      if (hasSshd()) subjects.push(await openSubject(SSH, sshTunnel));
      else context.note('ssh/sshd not installed: the ssh -L comparison was skipped');
      // Not counted: JIT compilation and the first buffers (sockit's first 64 MiB cost ~2 × the
      // CPU of the next), for every subject alike, as the exec suite warms up its loops.
      await alternate(subjects, 1, 1, WARMUP_BYTES);
      const bulk = await alternate(subjects, BULK_ROUNDS, 1, BULK_BYTES / BULK_ROUNDS);
      const bulkOf = new Map(
        subjects.map((subject, index) => [subject.name, recordBulk(context, subject.name, bulk[index]!)]),
      );
      const many = await alternate(subjects, MANY_ROUNDS, STREAMS, STREAM_BYTES / MANY_ROUNDS);
      const manyOf = new Map(
        subjects.map((subject, index) => [
          subject.name,
          recordMany(context, subject.name, many[index]!, MANY_ROUNDS),
        ]),
      );
      const sockit = bulkOf.get(SOCKIT)!;
      const floor = bulkOf.get(NODE_FLOOR)!;
      context.ratio({
        case: BULK_CASE,
        label: `sockit / ${NODE_FLOOR} MiB/s (what the protocol costs in Node)`,
        value: sockit.rate / floor.rate,
      });
      const ssh = bulkOf.get(SSH);
      if (ssh === undefined) return;
      context.ratio({
        case: BULK_CASE,
        label: 'sockit / ssh -L MiB/s',
        value: sockit.rate / ssh.rate,
        target: 1.0,
      });
      context.ratio({ case: BULK_CASE, label: `${NODE_FLOOR} / ssh -L MiB/s`, value: floor.rate / ssh.rate });
      // Wall time swings with the neighbours on a shared machine; CPU per GiB does not.
      context.ratio({
        case: BULK_CASE,
        label: 'ssh -L / sockit CPU-seconds per GiB (both ends)',
        value: ssh.cpu / sockit.cpu,
      });
      context.ratio({
        case: BULK_CASE,
        label: `ssh -L / ${NODE_FLOOR} CPU-seconds per GiB (both ends)`,
        value: ssh.cpu / floor.cpu,
      });
      context.ratio({
        case: MANY_CASE,
        label: 'sockit / ssh -L aggregate MiB/s',
        value: manyOf.get(SOCKIT)! / manyOf.get(SSH)!,
      });
    } finally {
      for (const subject of subjects) await subject.close();
    }
  },
};
