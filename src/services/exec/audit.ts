import { createWriteStream, openSync, type WriteStream } from 'node:fs';
import { SockitError } from '../../errors.js';
import type { Logger } from '../../log.js';

/**
 * One audit record per exec request, run or refused. Environment values never appear (only
 * names): they may hold secrets.
 */
export interface ExecAuditEntry {
  peer: string;
  connection: number;
  id: number;
  /**
   * `exit`: the command ran and ended; `refused`: the request, policy or limits said no;
   * `failed`: the program could not start; `cancelled`: the client left before it started.
   */
  outcome: 'exit' | 'refused' | 'failed' | 'cancelled';
  argv?: readonly string[];
  shell?: string;
  /** A `sockit shell` request: the server chose the program (its argv is then in `argv`). */
  login?: boolean;
  /** The command ran in a pseudo-terminal. */
  pty?: boolean;
  /** Its terminal's bytes went over a data channel (docs/protocol.md "Data channels"). */
  channel?: boolean;
  cwd?: string;
  envNames?: readonly string[];
  pid?: number;
  code?: number | null;
  signal?: string | null;
  timedOut?: boolean;
  truncated?: boolean;
  /** Why the server killed it: timeout, cancel, disconnect, output limit. */
  killedBy?: string;
  /** The error code sent instead of `exit`. */
  error?: string;
  durationMs?: number;
  /** stdout + stderr bytes sent to the client. */
  bytesOut?: number;
  stdoutBytes?: number;
  stderrBytes?: number;
  stdinBytes?: number;
}

/** Where audit entries go. */
export interface AuditSink {
  record(entry: ExecAuditEntry): void;
  /** Resolves once the file has room again (at once when it is not behind): exec waits on it before starting a command. */
  ready(): Promise<void>;
  /** Whether the file is behind now (`ready()` would wait): checked without a promise per command. */
  readonly behind: boolean;
  /** Lines waiting for the file and lines dropped because that queue was full. */
  readonly backlog: { queuedBytes: number; dropped: number };
  close(): Promise<void>;
}

/** How long close() lets a file that is behind drain before it gives up on the queue. */
const AUDIT_CLOSE_FLUSH_MS = 5000;

/** What the audit file may fall behind by before entries are dropped (and counted). */
export const DEFAULT_AUDIT_QUEUE_BYTES = 1024 * 1024;

/**
 * Builds the audit sink: JSON lines appended to `file` (opened now, mode 0600, so a bad path
 * stops the server at start rather than losing records later) and/or entries on a Logger.
 * The file's backpressure is respected: while it drains, lines wait in a queue of at most
 * `maxQueuedBytes`; past that they are dropped, counted, and the count is written as an
 * `audit-dropped` line (and logged) once the file has caught up. Memory stays bounded whatever
 * the disk does; exec's `ready()` wait keeps drops to floods of refusals.
 */
export function createAuditSink(options: {
  logger?: Logger;
  file?: string;
  log?: Logger;
  maxQueuedBytes?: number;
}): AuditSink {
  const maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_AUDIT_QUEUE_BYTES;
  const backlog = { queuedBytes: 0, dropped: 0 };
  const queue: string[] = [];
  let draining: Promise<void> | undefined;
  let resolveDrained: (() => void) | undefined;
  let stream: WriteStream | undefined;
  if (options.file !== undefined) {
    let fd: number;
    try {
      fd = openSync(options.file, 'a', 0o600);
    } catch (error) {
      throw new SockitError(
        'USAGE',
        `cannot open exec audit file ${options.file}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    stream = createWriteStream('', { fd });
    let reported = false;
    stream.on('error', (error) => {
      // A broken file never drains: nothing may wait for it, and nothing more is written to it
      // (the stream closes its descriptor itself).
      stream = undefined;
      queue.length = 0;
      backlog.queuedBytes = 0;
      draining = undefined;
      resolveDrained?.();
      if (reported) return;
      reported = true;
      options.log?.error('exec audit file cannot be written', { file: options.file, error: String(error) });
    });
  }

  /** Writes queued lines until the stream is full again or the queue is empty. */
  const flush = (): void => {
    const open = stream;
    if (!open) return;
    while (queue.length > 0) {
      const line = queue.shift()!;
      backlog.queuedBytes -= line.length;
      if (!open.write(line)) {
        waitForDrain(open);
        return;
      }
    }
    if (backlog.dropped > 0) {
      const dropped = backlog.dropped;
      backlog.dropped = 0;
      options.log?.warn('exec audit file fell behind; entries were dropped', { file: options.file, dropped });
      const line = `${JSON.stringify({ time: new Date().toISOString(), event: 'audit-dropped', dropped })}\n`;
      if (!open.write(line)) {
        waitForDrain(open);
        return;
      }
    }
    draining = undefined;
    resolveDrained?.();
    resolveDrained = undefined;
  };
  const waitForDrain = (open: WriteStream): void => {
    draining ??= new Promise((resolve) => {
      resolveDrained = resolve;
    });
    open.once('drain', flush);
  };

  return {
    backlog,
    record(entry) {
      options.logger?.info('exec', { ...entry });
      if (!stream) return;
      const line = `${JSON.stringify({ time: new Date().toISOString(), event: 'exec', ...entry })}\n`;
      if (draining === undefined) {
        if (!stream.write(line)) waitForDrain(stream);
        return;
      }
      if (backlog.queuedBytes + line.length > maxQueuedBytes) {
        backlog.dropped++;
        return;
      }
      queue.push(line);
      backlog.queuedBytes += line.length;
    },
    ready() {
      return draining ?? Promise.resolve();
    },
    get behind() {
      return draining !== undefined;
    },
    async close() {
      const open = stream;
      if (!open) return;
      // What is queued still goes to the file (the drop count too) before it is closed, but a
      // file that does not move within a fixed time must not hold the server's shutdown.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), AUDIT_CLOSE_FLUSH_MS);
      });
      try {
        while (draining !== undefined) {
          if ((await Promise.race([draining, deadline])) === 'late') {
            options.log?.warn('exec audit file did not drain before close; queued entries were lost', {
              file: options.file,
              queued: queue.length,
              dropped: backlog.dropped,
            });
            stream = undefined;
            open.destroy();
            return;
          }
        }
      } finally {
        clearTimeout(timer);
      }
      stream = undefined;
      resolveDrained?.();
      await new Promise<void>((resolve) => open.end(resolve));
    },
  };
}
