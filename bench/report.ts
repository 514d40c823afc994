/** What every benchmark suite reports to the runner (bench/run.ts). */

export interface Measurement {
  /** The case, e.g. `echo ping-pong 64 B x50`. */
  case: string;
  /** Who was measured: `sockit`, `node net`, `python ThreadingTCPServer`, `ncat`, … */
  subject: string;
  value: number;
  unit: string;
  /** Extra figures shown beside the value: p50/p99 latency, MB/s, peak RSS. */
  extra?: Record<string, string | number>;
}

export interface Ratio {
  case: string;
  /** e.g. `sockit / node net msgs/s`. */
  label: string;
  value: number;
  /** The target for this ratio, if it has one (met when value >= target). */
  target?: number;
}

export interface BenchContext {
  record(measurement: Measurement): void;
  ratio(ratio: Ratio): void;
  /** A line of commentary (a peer missing, how to install it). */
  note(text: string): void;
}

export interface BenchSuite {
  name: string;
  run(context: BenchContext): Promise<void>;
}

/** One suite's part of a run, as bench/run.ts prints it and writes it to latest.json. */
export interface SuiteResult {
  name: string;
  measurements: Measurement[];
  ratios: Ratio[];
  notes: string[];
  seconds: number;
  error?: string;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  /** Absent when no python3 was found. */
  python?: string | undefined;
  os: string;
}

/** bench/results/latest.json: written by bench/run.ts, read by bench/markdown.ts. */
export interface BenchResults {
  date: string;
  machine: Machine;
  seconds: number;
  suites: SuiteResult[];
}
