/**
 * The echo suite: sockit's framed echo and raw echo against Node's plain `net` echo and the
 * seeds' Python ThreadingTCPServer echo, same machine, same run, same load generator.
 *
 * Each server runs in its own child process and the generator in another, so on a 2-core
 * machine each side has a core. Every case warms up, then measures for a fixed window.
 */
import type { ServerChild } from './lib/children.js';
import { type CaseFigures, measureLoad } from './lib/load.js';
import type { LoadSpec } from './lib/load-spec.js';
import {
  findPython,
  hasRawListen,
  type SockitServer,
  startNetEcho,
  startPythonEcho,
  startSockitListen,
  startSockitServe,
} from './lib/servers.js';
import type { BenchContext, BenchSuite } from './report.js';

/** `SOCKIT_BENCH_SECONDS=1 npm run bench -- echo` for a quick look; the default is 3. */
const DURATION_MS = Number(process.env.SOCKIT_BENCH_SECONDS ?? 3) * 1000;
const WARMUP_MS = Math.min(1000, DURATION_MS / 2);

type Workload = Pick<LoadSpec, 'connections' | 'inFlight' | 'bodyBytes'> & { name: string };

const WORKLOADS: Workload[] = [
  { name: 'echo ping-pong 64 B x50 conns', connections: 50, inFlight: 1, bodyBytes: 64 },
  { name: 'echo pipelined 64 B (4 conns x 32 in flight)', connections: 4, inFlight: 32, bodyBytes: 64 },
  { name: 'echo pipelined 64 KiB (4 conns x 8 in flight)', connections: 4, inFlight: 8, bodyBytes: 65536 },
];

const SOCKIT = 'sockit serve (framed)';
const SOCKIT_RAW = 'sockit listen --echo (raw)';
const NET = 'node net echo';
const PYTHON = 'python ThreadingTCPServer';

/** Targets of issue 2, for ping-pong only. */
const TARGETS: Record<string, Record<string, number>> = {
  [WORKLOADS[0]!.name]: { [`${SOCKIT} / ${NET}`]: 0.8, [`${SOCKIT} / ${PYTHON}`]: 1.5 },
};

interface Subject {
  name: string;
  mode: LoadSpec['mode'];
  start(): Promise<ServerChild | SockitServer>;
}

export const echoSuite: BenchSuite = {
  name: 'echo',
  async run(context) {
    const subjects: Subject[] = [{ name: SOCKIT, mode: 'framed', start: () => startSockitServe() }];
    if (hasRawListen()) {
      subjects.push({ name: SOCKIT_RAW, mode: 'raw', start: () => startSockitListen('upper') });
    } else {
      context.note(
        'raw echo: `sockit listen --echo` is not in the built CLI yet, so its rows are missing; ' +
          'once it exists this suite measures it on every workload (bench/echo.ts, hasRawListen).',
      );
    }
    subjects.push({ name: NET, mode: 'raw', start: startNetEcho });
    const python = findPython();
    if (python) {
      subjects.push({ name: PYTHON, mode: 'raw', start: () => startPythonEcho(python.path) });
    } else {
      context.note(
        'python3 not found: the ThreadingTCPServer peer is skipped (set PYTHON=/path/to/python3).',
      );
    }

    // workload name -> subject name -> figures
    const figures = new Map<string, Map<string, CaseFigures>>();
    for (const subject of subjects) {
      let server: ServerChild | SockitServer;
      try {
        server = await subject.start();
      } catch (error) {
        context.note(`${subject.name}: could not start: ${(error as Error).message}`);
        continue;
      }
      try {
        for (const workload of WORKLOADS) {
          const result = await measureSafely(context, subject.name, workload, () =>
            measureLoad(server, {
              mode: subject.mode,
              connections: workload.connections,
              inFlight: workload.inFlight,
              bodyBytes: workload.bodyBytes,
              warmupMs: WARMUP_MS,
              durationMs: DURATION_MS,
              ...('token' in server ? { token: server.token } : {}),
            }),
          );
          if (!result) continue;
          if (!figures.has(workload.name)) figures.set(workload.name, new Map());
          figures.get(workload.name)!.set(subject.name, result);
          record(context, workload, subject.name, result);
        }
      } finally {
        await server.stop();
      }
    }

    for (const workload of WORKLOADS) {
      const row = figures.get(workload.name);
      if (!row) continue;
      const large = workload.bodyBytes >= 65536;
      for (const numerator of [SOCKIT, SOCKIT_RAW]) {
        for (const denominator of [NET, PYTHON]) {
          const top = row.get(numerator);
          const bottom = row.get(denominator);
          if (!top || !bottom) continue;
          const label = `${numerator} / ${denominator}`;
          const target = TARGETS[workload.name]?.[label];
          context.ratio({
            case: workload.name,
            label: `${label} ${large ? 'MB/s' : 'msgs/s'}`,
            value: top.messagesPerSecond / bottom.messagesPerSecond,
            ...(target !== undefined ? { target } : {}),
          });
        }
      }
      const net = row.get(NET);
      const py = row.get(PYTHON);
      if (net && py) {
        context.ratio({
          case: workload.name,
          label: `${NET} / ${PYTHON} (context: the issue measured ~2x)`,
          value: net.messagesPerSecond / py.messagesPerSecond,
        });
      }
    }
  },
};

async function measureSafely(
  context: BenchContext,
  subject: string,
  workload: Workload,
  run: () => Promise<CaseFigures>,
): Promise<CaseFigures | undefined> {
  try {
    return await run();
  } catch (error) {
    context.note(`${workload.name} / ${subject}: ${(error as Error).message}`);
    return undefined;
  }
}

function record(context: BenchContext, workload: Workload, subject: string, result: CaseFigures): void {
  context.record({
    case: workload.name,
    subject,
    value: result.messagesPerSecond,
    unit: 'msgs/s',
    extra: {
      'MB/s': round(result.megabytesPerSecond, 1),
      'p50 µs': Math.round(result.latency.p50),
      'p99 µs': Math.round(result.latency.p99),
      'server CPU': percent(result.serverCpu),
      'gen CPU': percent(result.generatorCpu),
      'peak RSS MB': result.serverPeakRss === undefined ? 'n/a' : round(result.serverPeakRss / 2 ** 20, 1),
    },
  });
  if (result.generatorCpu >= 0.9) {
    context.note(
      `${workload.name} / ${subject}: the generator used ${percent(result.generatorCpu)} of a core, so it ` +
        'may be the limit here; read this figure as a lower bound for the server.',
    );
  }
}

function percent(fraction: number | undefined): string {
  return fraction === undefined ? 'n/a' : `${Math.round(fraction * 100)}%`;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
