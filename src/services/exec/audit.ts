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
  close(): Promise<void>;
}

/**
 * Builds the audit sink: JSON lines appended to `file` (opened now, mode 0600, so a bad path
 * stops the server at start rather than losing records later) and/or entries on a Logger.
 */
export function createAuditSink(options: { logger?: Logger; file?: string; log?: Logger }): AuditSink {
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
      if (reported) return;
      reported = true;
      options.log?.error('exec audit file cannot be written', { file: options.file, error: String(error) });
    });
  }
  return {
    record(entry) {
      options.logger?.info('exec', { ...entry });
      stream?.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'exec', ...entry })}\n`);
    },
    close() {
      const open = stream;
      stream = undefined;
      if (!open) return Promise.resolve();
      return new Promise((resolve) => open.end(resolve));
    },
  };
}
