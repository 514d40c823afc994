import type { LatencySummary } from './histogram.js';

/** One load-generation case, passed to the generator child as JSON. */
export interface LoadSpec {
  /**
   * `raw`: send bodies, count echoed bytes. `framed`: sockit echo requests over the protocol.
   * `resp`: Redis inline `PING\r\n` commands, `+PONG\r\n` answers (`bodyBytes` is not used).
   */
  mode: 'raw' | 'framed' | 'resp';
  host: string;
  port: number;
  connections: number;
  /** Requests outstanding per connection: 1 is ping-pong, more is pipelining. */
  inFlight: number;
  bodyBytes: number;
  /** Traffic before measuring, so JIT, socket buffers and the server's caches settle. */
  warmupMs: number;
  durationMs: number;
  /** Framed mode: the server's token; the generator authenticates like a real client. */
  token?: string;
}

/** What the generator reports for the measured window. */
export interface LoadResult {
  /** Echo replies completed in the window. */
  messages: number;
  elapsedMs: number;
  /** Request-to-reply time in microseconds, as the generator saw it. */
  latency: LatencySummary;
  /** The generator's own CPU time (user + system) in the window. */
  cpuMs: number;
  errors: string[];
}

/** The generator's stdout lines: one JSON object each. */
export type LoadEvent =
  | { event: 'start' }
  | { event: 'end' }
  | { event: 'result'; result: LoadResult }
  | { event: 'error'; message: string };
