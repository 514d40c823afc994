/**
 * How `sockit put`, `get` and `sync` show progress: a bar on a terminal (bytes, rate, ETA, file
 * count), JSON-lines events for scripts with `--json`, one plain line per file when piped, and
 * nothing at all with `--quiet`.
 */
import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';
import type { TransferResult } from '../client/files.js';
import type { TransferItem } from '../client/files-tree.js';
import { SockitError } from '../errors.js';

/** What a transfer command tells its reporter. */
export interface TransferReporter {
  start(count: number, totalBytes: number): void;
  fileStart(item: TransferItem, index: number, count: number): void;
  progress(item: TransferItem, bytes: number, overallBytes: number): void;
  fileDone(item: TransferItem, result: TransferResult): void;
  /** The transfer ended (also after a failure): stop the bar, print the summary. */
  finish(ok: boolean, error?: unknown): void;
}

export interface ReporterOptions {
  /** `put` or `get`: the verb in plain lines. */
  verb: string;
  json?: boolean;
  quiet?: boolean;
  /** Where events and plain lines go. Default process.stdout. */
  out?: NodeJS.WritableStream;
  /** Where the bar goes. Default process.stderr; the bar is shown only when it is a TTY. */
  terminal?: NodeJS.WriteStream;
}

/** At most this many JSON progress events per second (file start and end are always sent). */
const JSON_EVENTS_PER_SECOND = 5;

/** Picks the reporter for the options and the terminal. */
export function createReporter(options: ReporterOptions): TransferReporter {
  const out = options.out ?? process.stdout;
  if (options.quiet) return silentReporter;
  if (options.json) return jsonReporter(out);
  const terminal = options.terminal ?? process.stderr;
  return terminal.isTTY ? barReporter(options.verb, terminal, out) : lineReporter(options.verb, out);
}

const silentReporter: TransferReporter = {
  start() {},
  fileStart() {},
  progress() {},
  fileDone() {},
  finish() {},
};

function jsonReporter(out: NodeJS.WritableStream): TransferReporter {
  const emit = (event: Record<string, unknown>): void => {
    out.write(`${JSON.stringify(event)}\n`);
  };
  let started = 0;
  let totalBytes = 0;
  let files = 0;
  let lastEvent = 0;
  return {
    start(count, bytes) {
      started = performance.now();
      totalBytes = bytes;
      emit({ event: 'start', files: count, bytes });
    },
    fileStart(item, index, count) {
      emit({
        event: 'file',
        index,
        count,
        localPath: item.localPath,
        remotePath: item.remotePath,
        size: item.size,
      });
    },
    progress(item, bytes, overallBytes) {
      const now = performance.now();
      if (bytes < item.size && now - lastEvent < 1000 / JSON_EVENTS_PER_SECOND) return;
      lastEvent = now;
      emit({
        event: 'progress',
        remotePath: item.remotePath,
        bytes,
        size: item.size,
        overallBytes,
        totalBytes,
      });
    },
    fileDone(item, result) {
      files++;
      emit({
        event: 'done',
        localPath: item.localPath,
        remotePath: item.remotePath,
        size: result.size,
        checksum: result.checksum,
        digest: result.digest,
        resumedFrom: result.resumedFrom,
        skipped: result.skipped,
        ...(result.compression ? { compression: result.compression } : {}),
        wireBytes: result.wireBytes,
      });
    },
    finish(ok, error) {
      const seconds = (performance.now() - started) / 1000;
      const failure =
        error instanceof SockitError
          ? { code: error.code, message: error.message }
          : error instanceof Error
            ? { message: error.message }
            : {};
      emit({ event: 'end', ok, files, seconds: round(seconds, 3), ...(ok ? {} : { error: failure }) });
    },
  };
}

function lineReporter(verb: string, out: NodeJS.WritableStream): TransferReporter {
  return {
    start() {},
    fileStart() {},
    progress() {},
    fileDone(item, result) {
      const [from, to] =
        verb === 'put' ? [item.localPath, item.remotePath] : [item.remotePath, item.localPath];
      const what = result.skipped
        ? 'already there, identical'
        : `${formatBytes(result.size)}${result.resumedFrom > 0 ? `, resumed at ${formatBytes(result.resumedFrom)}` : ''}`;
      out.write(`${verb} ${from} -> ${to} (${what}) ${result.checksum} ${result.digest}\n`);
    },
    finish() {},
  };
}

function barReporter(
  verb: string,
  terminal: NodeJS.WriteStream,
  out: NodeJS.WritableStream,
): TransferReporter {
  // Loaded here, not at the top: `ls` (formatBytes), --json, --quiet and piped output never draw it.
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
  const bar = new cliProgress.SingleBar(
    {
      stream: terminal,
      format: `${verb} {bar} {percentage}% | {done} / {all} | {rate} | ETA {eta_formatted} | file {file}/{files} {name}`,
      hideCursor: true,
      barsize: 24,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = 0;
  let totalBytes = 0;
  let count = 0;
  const lines: string[] = [];
  const payload = (overallBytes: number, index: number, name: string): Record<string, unknown> => {
    const seconds = Math.max((performance.now() - started) / 1000, 0.001);
    return {
      done: formatBytes(overallBytes),
      all: formatBytes(totalBytes),
      rate: `${formatBytes(overallBytes / seconds)}/s`,
      file: index + 1,
      files: count,
      name: shorten(name, 30),
    };
  };
  let index = 0;
  return {
    start(files, bytes) {
      started = performance.now();
      totalBytes = bytes;
      count = files;
      bar.start(Math.max(bytes, 1), 0, payload(0, 0, ''));
    },
    fileStart(item, at) {
      index = at;
      bar.update(payload(0, at, item.remotePath));
    },
    progress(item, _bytes, overallBytes) {
      bar.update(overallBytes, payload(overallBytes, index, item.remotePath));
    },
    fileDone(item, result) {
      if (result.skipped) lines.push(`${item.remotePath}: already there, identical`);
    },
    finish(ok) {
      bar.stop();
      for (const line of lines) out.write(`${line}\n`);
      if (ok) {
        const seconds = (performance.now() - started) / 1000;
        out.write(
          `${verb}: ${count} file${count === 1 ? '' : 's'}, ${formatBytes(totalBytes)} in ${seconds.toFixed(1)} s, SHA-256 verified\n`,
        );
      }
    },
  };
}

/** `1.5 MiB`, `512 B`: binary units, as `ls -h` and rsync print them. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function shorten(text: string, width: number): string {
  return text.length <= width ? text : `…${text.slice(text.length - width + 1)}`;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A bar for `sockit sync`: files and bytes copied of the plan's totals. */
export interface SyncBar {
  update(progress: { files: number; bytes: number; totalFiles: number; totalBytes: number }): void;
  stop(): void;
}

/** The sync bar on `terminal` when it is a TTY (never for `--json`/piped output), else undefined. */
export function createSyncBar(terminal: NodeJS.WriteStream = process.stderr): SyncBar | undefined {
  if (!terminal.isTTY) return undefined;
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof CliProgress;
  const bar = new cliProgress.SingleBar(
    {
      stream: terminal,
      format: 'sync {bar} {percentage}% | {files}/{totalFiles} files | {done} / {all}',
      hideCursor: true,
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(progress) {
      const payload = {
        files: progress.files,
        totalFiles: progress.totalFiles,
        done: formatBytes(progress.bytes),
        all: formatBytes(progress.totalBytes),
      };
      // Files and bytes both move the bar: many empty files still show progress.
      const total = Math.max(progress.totalBytes + progress.totalFiles, 1);
      if (!started) bar.start(total, 0, payload);
      started = true;
      bar.update(progress.bytes + progress.files, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
