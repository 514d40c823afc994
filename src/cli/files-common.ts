/** What `sockit put` and `sockit get` share: options, Ctrl-C handling, progress wiring. */
import type { Command } from 'commander';
import type { TreeCallbacks } from '../client/files-tree.js';
import { SockitError } from '../errors.js';
import { parseChoice } from '../options.js';
import { CHECKSUMS, type ChecksumName } from '../protocol/files.js';
import type { ClientCliOptions } from './common.js';
import { reportError } from './common.js';
import { createReporter, type TransferReporter } from './progress.js';

/** Options of the transfer commands. */
export interface TransferCliOptions extends ClientCliOptions {
  recursive?: boolean;
  overwrite?: boolean;
  resume?: boolean;
  json?: boolean;
  quiet?: boolean;
  checksum?: ChecksumName;
  compress?: boolean;
}

/** Adds -r, --overwrite, --resume, --checksum, --compress, --json and --quiet. */
export function addTransferOptions(command: Command): Command {
  return command
    .option('-r, --recursive', 'copy directories and everything below them')
    .option('-f, --overwrite', 'replace files that already exist at the destination')
    .option(
      '--resume',
      'continue interrupted transfers from their kept partial files; skip files already there and identical',
    )
    .option(
      '--checksum <name>',
      `verify with this whole-file checksum only (${CHECKSUMS.join(', ')}; default: the first of these the server has)`,
      (text: string) => parseChoice(text, '--checksum', CHECKSUMS),
    )
    .option(
      '-z, --compress',
      'compress chunks that shrink (zstd where Node has it, else deflate), if the server agrees; for slow links',
    )
    .option('--json', 'progress and results as JSON lines on stdout, for scripts')
    .option('-q, --quiet', 'print nothing but errors');
}

/**
 * Runs a transfer with a reporter and a signal that fires on the first Ctrl-C or SIGTERM: the
 * transfer stops, its partial file is kept, and the message says how to finish it.
 */
export async function runTransferCommand(
  verb: string,
  options: TransferCliOptions,
  work: (reporter: TransferReporter, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const interrupt = (signal: NodeJS.Signals): void => controller.abort(signal);
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const reporter = createReporter({ verb, json: options.json, quiet: options.quiet });
  let ok = false;
  try {
    await work(reporter, controller.signal);
    ok = true;
  } catch (error) {
    reporter.finish(false, error);
    if (controller.signal.aborted) {
      // CANCELLED exits 130, as a shell reports Ctrl-C; the transfer's own error is the cause.
      reportError(
        new SockitError(
          'CANCELLED',
          `interrupted (${String(controller.signal.reason)}); what arrived is kept: run the same command with --resume to finish ${verb === 'put' ? 'the upload' : 'the download'}`,
          { cause: error },
        ),
      );
      return;
    }
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  if (ok) reporter.finish(true);
}

/** Connects a reporter to the callbacks of a multi-file transfer. */
export function reporterCallbacks(reporter: TransferReporter): TreeCallbacks {
  return {
    onFileStart: (item, index, count) => reporter.fileStart(item, index, count),
    onProgress: (item, bytes, overall) => reporter.progress(item, bytes, overall),
    onFileDone: (item, result) => reporter.fileDone(item, result),
  };
}

/**
 * A remote path as the commands take it: a leading `/` means the server's root, as `put FILE
 * ADDR /` already does, so `ls ADDR /` and `get ADDR /dir/a.bin` work too. The server still
 * refuses absolute paths on the wire; this is only how the CLI spells the root.
 */
export function rootRelative(remote: string): string {
  return remote.replace(/^\/+/, '');
}

/** The library options a transfer command passes on. */
export function transferOptions(options: TransferCliOptions, signal: AbortSignal) {
  return {
    overwrite: options.overwrite ?? false,
    resume: options.resume ?? false,
    signal,
    ...(options.checksum ? { checksum: options.checksum } : {}),
    ...(options.compress ? { compress: true } : {}),
  };
}
