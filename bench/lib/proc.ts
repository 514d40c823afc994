/**
 * CPU time and memory of another process, read from Linux /proc so the measured process runs
 * no extra code. Elsewhere the readers return undefined and the runner prints "n/a".
 */
import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU time of `pid` in milliseconds, or undefined when /proc is unavailable. */
export function cpuTimeMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields after its closing ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const userTicks = Number(fields[11]);
    const systemTicks = Number(fields[12]);
    return ((userTicks + systemTicks) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * CPU time of `pid` and all its descendants (a `--workers` primary and its workers), ms: the
 * children are read from `/proc/PID/task/PID/children`; undefined without /proc.
 */
export function treeCpuTimeMs(pid: number): number | undefined {
  const own = cpuTimeMs(pid);
  if (own === undefined) return undefined;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // no children file (an older kernel): the process alone
  }
  return children.reduce((sum, child) => sum + (treeCpuTimeMs(child) ?? 0), own);
}

/** Resident set size and its peak (VmHWM) of `pid` in bytes. */
export function memoryOf(pid: number): { rss: number; peakRss: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = kilobytes(status, 'VmRSS');
    const peakRss = kilobytes(status, 'VmHWM');
    if (rss === undefined || peakRss === undefined) return undefined;
    return { rss: rss * 1024, peakRss: peakRss * 1024 };
  } catch {
    return undefined;
  }
}

function kilobytes(status: string, field: string): number | undefined {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return match ? Number(match[1]) : undefined;
}

/** Samples a process's RSS on an interval; `stop()` returns the highest sample in bytes. */
export function sampleRss(pid: number, intervalMs = 200): { stop(): number | undefined } {
  let peak: number | undefined;
  const sample = (): void => {
    const memory = memoryOf(pid);
    if (memory && (peak === undefined || memory.rss > peak)) peak = memory.rss;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/**
 * Busy CPU time of the whole machine in milliseconds (all cores, from /proc/stat).
 * The busy time of a window minus the server's and the generator's is what everything else
 * took: the kernel's loopback work outside process accounting, the runner, other programs.
 */
export function machineCpuMs(): { busy: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal guest guest_nice; guests are inside user.
    const total = ticks.slice(0, 8).reduce((sum, value) => sum + value, 0);
    const idle = ticks[3]! + ticks[4]!;
    return { busy: ((total - idle) * 1000) / CLOCK_TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}
