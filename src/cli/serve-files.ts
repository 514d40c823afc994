import type { Command } from 'commander';
import { invalidOption, SockitError } from '../errors.js';
import { argParsers } from '../options.js';
import { filesService } from '../services/files/index.js';
import { DURATION_HELP } from './common.js';
import type { ServePlugin } from './serve-plugins.js';

interface FilesCliOptions {
  files?: string;
  /** Bytes, bytes and milliseconds: parsed by argParsers. */
  filesMaxSize?: number;
  filesReserve?: number;
  filesStallTimeout?: number;
  open?: string[];
  insecureNoAuth?: boolean;
}

/** Options that only mean something with `--files`: `[flag, key]`. */
const DEPENDENT_FLAGS: readonly [string, keyof FilesCliOptions][] = [
  ['--files-max-size', 'filesMaxSize'],
  ['--files-reserve', 'filesReserve'],
  ['--files-stall-timeout', 'filesStallTimeout'],
];

/**
 * `sockit serve --files DIR`: the files service, off unless a root is given, and never usable
 * without the token (it cannot be put on `--open`; only `--insecure-no-auth` opens it).
 */
export const filesServePlugin: ServePlugin = {
  addOptions(command: Command) {
    command
      .option('--files <dir>', 'files service: serve put/get/ls/rm under this directory (needs the token)')
      .option(
        '--files-max-size <bytes>',
        'files: largest file a client may upload (K/M/G/T suffixes; default: no limit)',
        argParsers.bytes('--files-max-size'),
      )
      .option(
        '--files-reserve <bytes>',
        'files: refuse uploads that would leave less free disk space than this (default 0)',
        argParsers.bytes('--files-reserve'),
      )
      .option(
        '--files-stall-timeout <duration>',
        `files: give up an upload that sends nothing this long, keeping its partial (${DURATION_HELP}; default 2m; 0 = never)`,
        argParsers.duration('--files-stall-timeout'),
      );
  },
  create(raw, log) {
    const options = raw as FilesCliOptions;
    if (options.files === undefined) {
      const stray = DEPENDENT_FLAGS.find(([, key]) => options[key] !== undefined);
      if (stray) throw new SockitError('USAGE', `${stray[0]} needs --files DIR`);
      return undefined;
    }
    if (options.open?.includes('files')) {
      throw new SockitError(
        'USAGE',
        '--open files: the files service always needs the token; remove files from --open',
      );
    }
    let service: ReturnType<typeof filesService>;
    try {
      service = filesService({
        root: options.files,
        ...(options.filesMaxSize !== undefined ? { maxFileSize: options.filesMaxSize } : {}),
        ...(options.filesReserve !== undefined ? { reserveBytes: options.filesReserve } : {}),
        ...(options.filesStallTimeout !== undefined ? { stallTimeoutMs: options.filesStallTimeout } : {}),
      });
    } catch (error) {
      // The library names its option (`files root …`); say which flag that was.
      if (error instanceof SockitError && error.code === 'INVALID_OPTION')
        throw invalidOption(`--files: ${error.message}`, error);
      throw error;
    }
    log.info('files service on', { root: options.files });
    if (options.insecureNoAuth) {
      log.warn(
        'files are served WITHOUT authentication (--insecure-no-auth): anyone who can connect may read and write them',
      );
    }
    return service;
  },
};
