/**
 * The echo suite: sockit's framed echo and raw echo against Node's plain `net` echo, the seeds'
 * Python ThreadingTCPServer echo and `redis-server` answering PING, same machine, same run, same
 * load generator. The headline subject is `sockit serve --echo upper`: every reply is a new
 * frame, encoded, as any service's replies are.
 *
 * Each server runs in its own child process and the generator in another, so on a 2-core
 * machine each side has a core. Every case warms up, then measures for a fixed window; the
 * subjects take turns round by round so that a burst of other load on the machine hits all of
 * them alike, and each subject's best round is reported (other load only ever slows a round).
 */
import type { ServerChild } from './lib/children.js';
import { serverPathNanos } from './lib/in-process.js';
import { type CaseFigures, measureLoad } from './lib/load.js';
import type { LoadSpec } from './lib/load-spec.js';
import {
  findPython,
  hasRawListen,
  redisVersion,
  type SockitServer,
  startNetEcho,
  startPythonEcho,
  startRedis,
  startSockitListen,
  startSockitServe,
} from './lib/servers.js';
import { median, round } from './lib/stats.js';
import type { BenchContext, BenchSuite } from './report.js';

/** Seconds per round: `SOCKIT_BENCH_SECONDS=3 npm run bench -- echo` for steadier figures; the default is 1. */
const DURATION_MS = Number(process.env.SOCKIT_BENCH_SECONDS ?? 1) * 1000;
/** `SOCKIT_BENCH_CPU_PROF=/tmp/prof`: the sockit server child writes a V8 CPU profile there. */
const CPU_PROFILE_DIR = process.env.SOCKIT_BENCH_CPU_PROF;
const WARMUP_MS = Math.min(500, DURATION_MS / 2);

interface Workload {
  name: string;
  connections: number;
  inFlight: number;
  bodyBytes: number;
  rounds: number;
}

const PING_PONG: Workload = {
  name: 'echo ping-pong 64 B, 50 conns x 1 in flight',
  connections: 50,
  inFlight: 1,
  bodyBytes: 64,
  rounds: 4,
};
const PIPELINED: Workload = {
  name: 'echo pipelined 64 B, 4 conns x 32 in flight',
  connections: 4,
  inFlight: 32,
  bodyBytes: 64,
  rounds: 3,
};
const WORKLOADS: Workload[] = [
  PING_PONG,
  PIPELINED,
  {
    name: 'echo pipelined 64 KiB, 4 conns x 8 in flight',
    connections: 4,
    inFlight: 8,
    bodyBytes: 65536,
    rounds: 1,
  },
];

const SOCKIT = 'sockit serve (framed)';
const SOCKIT_RAW = 'sockit listen --echo (raw)';
/** The headline: the framed server with `--echo upper`, every reply a transformed, encoded frame. */
const SOCKIT_UPPER = 'sockit serve --echo upper (framed)';
const NET = 'node net echo';
const PYTHON = 'python ThreadingTCPServer';
const REDIS = 'redis-server PING';

/**
 * Targets per workload: issue 11 (the general path against `net` and Redis) and issue 2 (against
 * the Python seed), all on the headline subject.
 */
const TARGETS = new Map<Workload, Record<string, number>>([
  [PING_PONG, { [`${SOCKIT_UPPER} / ${NET}`]: 1.0, [`${SOCKIT_UPPER} / ${PYTHON}`]: 1.5 }],
  [PIPELINED, { [`${SOCKIT_UPPER} / ${NET}`]: 0.8, [`${SOCKIT_UPPER} / ${REDIS}`]: 1.0 }],
]);

interface Subject {
  name: string;
  mode: LoadSpec['mode'];
  start(): Promise<ServerChild | SockitServer>;
  /** Only in the 64 B workloads: Redis answers PING, it has no body to echo. */
  smallOnly?: boolean;
}

export const echoSuite: BenchSuite = {
  name: 'echo',
  async run(context) {
    await measureServerPath(context);
    const subjects = chooseSubjects(context);
    const servers = new Map<string, ServerChild | SockitServer>();
    try {
      for (const subject of subjects) {
        try {
          servers.set(subject.name, await subject.start());
        } catch (error) {
          context.note(`${subject.name}: could not start: ${(error as Error).message}`);
        }
      }
      for (const workload of WORKLOADS) {
        const rounds = new Map<string, CaseFigures[]>();
        for (let round = 0; round < workload.rounds; round++) {
          for (const subject of subjects) {
            const server = servers.get(subject.name);
            if (!server || (subject.smallOnly && workload.bodyBytes > 64)) continue;
            const figures = await measureCase(context, workload, subject, server);
            if (figures) rounds.set(subject.name, [...(rounds.get(subject.name) ?? []), figures]);
          }
        }
        reportWorkload(context, workload, rounds);
      }
    } finally {
      await Promise.all([...servers.values()].map((server) => server.stop()));
    }
  },
};

function chooseSubjects(context: BenchContext): Subject[] {
  const nodeArgs = CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROFILE_DIR}`] : [];
  const subjects: Subject[] = [
    {
      name: SOCKIT_UPPER,
      mode: 'framed',
      start: () => startSockitServe({ extraArgs: ['--echo', 'upper'], nodeArgs }),
    },
    { name: SOCKIT, mode: 'framed', start: () => startSockitServe() },
  ];
  if (hasRawListen()) {
    subjects.push({ name: SOCKIT_RAW, mode: 'raw', start: startSockitListen });
  } else {
    context.note('raw echo: the built CLI has no `sockit listen --echo`, so its rows are missing.');
  }
  subjects.push({ name: NET, mode: 'raw', start: startNetEcho });
  const python = findPython();
  if (python) {
    subjects.push({ name: PYTHON, mode: 'raw', start: () => startPythonEcho(python.path) });
  } else {
    context.note('python3 not found: the ThreadingTCPServer peer is skipped (set PYTHON=/path/to/python3).');
  }
  const redis = redisVersion();
  if (redis) {
    subjects.push({ name: REDIS, mode: 'resp', start: startRedis, smallOnly: true });
    context.note(`${REDIS}: ${redis}; inline \`PING\\r\\n\`, same generator and pipeline depth.`);
  } else {
    context.note('redis-server not found: the Redis PING peer is skipped (Debian package redis-server).');
  }
  return subjects;
}

/** The framing + dispatch + echo code alone, no sockets: what sockit adds per message. */
async function measureServerPath(context: BenchContext): Promise<void> {
  // 1 per read is ping-pong, 32 is a pipelined read; every reply is decoded and encoded afresh.
  const cases = [
    { perChunk: 1, transform: 'upper' as const },
    { perChunk: 32, transform: 'upper' as const },
    { perChunk: 1, transform: 'none' as const },
  ];
  for (const { perChunk, transform } of cases) {
    try {
      const nanos = await serverPathNanos(perChunk, 64, 400, transform);
      context.record({
        case: `echo server path in-process, 64 B, ${perChunk} request(s) per read, echo ${transform}, no sockets`,
        subject: transform === 'upper' ? SOCKIT_UPPER : SOCKIT,
        value: nanos / 1000,
        unit: 'µs CPU/request',
        extra: { 'requests/s per core': Math.round(1e9 / nanos) },
      });
    } catch (error) {
      context.note(`in-process server path: ${(error as Error).message}`);
    }
  }
}

async function measureCase(
  context: BenchContext,
  workload: Workload,
  subject: Subject,
  server: ServerChild | SockitServer,
): Promise<CaseFigures | undefined> {
  try {
    return await measureLoad(server, {
      mode: subject.mode,
      connections: workload.connections,
      inFlight: workload.inFlight,
      bodyBytes: workload.bodyBytes,
      warmupMs: WARMUP_MS,
      durationMs: DURATION_MS,
      ...('token' in server ? { token: server.token } : {}),
    });
  } catch (error) {
    context.note(`${workload.name} / ${subject.name}: ${(error as Error).message}`);
    return undefined;
  }
}

function reportWorkload(context: BenchContext, workload: Workload, rounds: Map<string, CaseFigures[]>): void {
  const best = new Map<string, CaseFigures>();
  const cost = new Map<string, number>();
  for (const [subject, figures] of rounds) {
    const top = figures.reduce((a, b) => (b.messagesPerSecond > a.messagesPerSecond ? b : a));
    best.set(subject, top);
    const micros = median(figures.map((f) => f.serverMicrosPerMessage).filter((v) => v !== undefined));
    if (micros !== undefined) cost.set(subject, micros);
    context.record({
      case: workload.name,
      subject,
      value: top.messagesPerSecond,
      unit: 'msgs/s',
      extra: {
        'MB/s': round(top.megabytesPerSecond, 1),
        'p50 µs': Math.round(top.latency.p50),
        'p99 µs': Math.round(top.latency.p99),
        'rounds msgs/s': figures.map((f) => compact(f.messagesPerSecond)).join(' '),
        'srv CPU': percent(top.serverCpu),
        'gen CPU': percent(top.generatorCpu),
        'other CPU': percent(top.otherCpu),
        'srv µs/msg': micros === undefined ? 'n/a' : round(micros, 2),
        'srv RSS MB': top.serverPeakRss === undefined ? 'n/a' : round(top.serverPeakRss / 2 ** 20, 1),
      },
    });
    if (top.generatorCpu >= 0.9) {
      context.note(
        `${workload.name} / ${subject}: the generator used ${percent(top.generatorCpu)} of a core in ` +
          'the best round, so it may be what limits this figure; read it as a lower bound for the server.',
      );
    }
  }
  const unit = workload.bodyBytes >= 65536 ? 'MB/s' : 'msgs/s';
  for (const numerator of [SOCKIT_UPPER, SOCKIT, SOCKIT_RAW]) {
    for (const denominator of [NET, REDIS, PYTHON]) {
      const top = best.get(numerator);
      const bottom = best.get(denominator);
      if (!top || !bottom) continue;
      const label = `${numerator} / ${denominator}`;
      const target = TARGETS.get(workload)?.[label];
      context.ratio({
        case: workload.name,
        label: `${label} ${unit}`,
        value: top.messagesPerSecond / bottom.messagesPerSecond,
        ...(target !== undefined ? { target } : {}),
      });
    }
  }
  // Server CPU per message does not depend on the generator keeping up: a second view.
  const sockitCost = cost.get(SOCKIT_UPPER);
  for (const peer of [NET, REDIS]) {
    const peerCost = cost.get(peer);
    if (sockitCost === undefined || peerCost === undefined) continue;
    context.ratio({
      case: workload.name,
      label: `${SOCKIT_UPPER} / ${peer} msgs per server CPU-second`,
      value: peerCost / sockitCost,
    });
  }
  const net = best.get(NET);
  const python = best.get(PYTHON);
  if (net && python) {
    context.ratio({
      case: workload.name,
      label: `${NET} / ${PYTHON} ${unit} (for context)`,
      value: net.messagesPerSecond / python.messagesPerSecond,
    });
  }
}

function compact(value: number): string {
  if (value >= 1e6) return `${round(value / 1e6, 2)}M`;
  if (value >= 1e3) return `${Math.round(value / 1e3)}k`;
  return String(Math.round(value));
}

function percent(fraction: number | undefined): string {
  return fraction === undefined ? 'n/a' : `${Math.round(fraction * 100)}%`;
}
