/**
 * Runs one load case against a server child and measures both sides over the same window:
 * the generator reports its replies, latencies and CPU time; this side reads the server's CPU
 * time and RSS from /proc when the generator says the window starts and ends.
 */
import { fileURLToPath } from 'node:url';
import type { ServerChild } from './children.js';
import { runChild } from './children.js';
import type { LatencySummary } from './histogram.js';
import type { LoadEvent, LoadResult, LoadSpec } from './load-spec.js';
import { machineCpuMs, sampleRss, treeCpuTimeMs } from './proc.js';

const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

/** The figures of one case. CPU shares are fractions of one core over the measured window. */
export interface CaseFigures {
  messagesPerSecond: number;
  /** Echoed payload per second, one direction, in MB (10^6 bytes). */
  megabytesPerSecond: number;
  latency: LatencySummary;
  /** Server CPU time (its child processes included) / wall time, or undefined without /proc. */
  serverCpu: number | undefined;
  /** Generator CPU time / wall time: near 1.0 would mean the generator, not the server, is the limit. */
  generatorCpu: number;
  /** Server CPU time per reply in microseconds: what one message costs the server, whatever else runs. */
  serverMicrosPerMessage: number | undefined;
  /**
   * Cores busy with anything but the server and the generator (kernel loopback work outside
   * process accounting, the runner, other programs on the machine); undefined without /proc.
   */
  otherCpu: number | undefined;
  /** Highest RSS of the server sampled during the case, in bytes. */
  serverPeakRss: number | undefined;
}

/** Runs `spec` (its host and port filled in from `server`) and returns the window's figures. */
export async function measureLoad(
  server: ServerChild,
  spec: Omit<LoadSpec, 'host' | 'port'>,
): Promise<CaseFigures> {
  const full: LoadSpec = { ...spec, host: '127.0.0.1', port: server.port };
  const rss = sampleRss(server.pid);
  let cpuStart: number | undefined;
  let cpuEnd: number | undefined;
  let machineStart: { busy: number } | undefined;
  let machineEnd: { busy: number } | undefined;
  let result: LoadResult | undefined;
  let failure: string | undefined;
  const timeoutMs = spec.warmupMs + spec.durationMs + 20_000;
  const { code, stderr } = await runChild(
    process.execPath,
    [LOADGEN, JSON.stringify(full)],
    (line) => {
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line) as LoadEvent;
      if (event.event === 'start') {
        cpuStart = treeCpuTimeMs(server.pid);
        machineStart = machineCpuMs();
      } else if (event.event === 'end') {
        cpuEnd = treeCpuTimeMs(server.pid);
        machineEnd = machineCpuMs();
      } else if (event.event === 'result') result = event.result;
      else failure = event.message;
    },
    timeoutMs,
  );
  const peakRss = rss.stop();
  if (!result) {
    throw new Error(
      `load generator against ${server.name} failed (exit ${code}): ${failure ?? stderr.trim()}`,
    );
  }
  if (result.errors.length > 0) {
    throw new Error(`load generator against ${server.name} saw errors: ${result.errors.join('; ')}`);
  }
  const seconds = result.elapsedMs / 1000;
  const serverCpu =
    cpuStart !== undefined && cpuEnd !== undefined ? (cpuEnd - cpuStart) / result.elapsedMs : undefined;
  const generatorCpu = result.cpuMs / result.elapsedMs;
  const machineBusy =
    machineStart && machineEnd ? (machineEnd.busy - machineStart.busy) / result.elapsedMs : undefined;
  return {
    messagesPerSecond: result.messages / seconds,
    megabytesPerSecond: (result.messages * spec.bodyBytes) / seconds / 1e6,
    latency: result.latency,
    serverCpu,
    generatorCpu,
    serverMicrosPerMessage:
      serverCpu === undefined || result.messages === 0
        ? undefined
        : (serverCpu * 1e6 * seconds) / result.messages,
    otherCpu:
      machineBusy === undefined || serverCpu === undefined
        ? undefined
        : Math.max(0, machineBusy - serverCpu - generatorCpu),
    serverPeakRss: peakRss,
  };
}
