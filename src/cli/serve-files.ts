import type { Command } from 'commander';
import { SockitError } from '../errors.js';
import { filesService } from '../services/files/index.js';
import { parseIntOption } from './common.js';
import type { ServePlugin } from './serve-plugins.js';

interface FilesCliOptions {
  files?: string;
  filesMaxSize?: string;
  filesReserve?: string;
  filesStallTimeout?: string;
  open?: string;
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
      )
      .option(
        '--files-reserve <bytes>',
        'files: refuse uploads that would leave less free disk space than this (default 0)',
      )
      .option(
        '--files-stall-timeout <ms>',
        'files: give up an upload that sends nothing this long, keeping its partial (default 120000; 0 = never)',
      );
  },
  create(raw, log) {
    const options = raw as FilesCliOptions;
    if (options.files === undefined) {
      const stray = DEPENDENT_FLAGS.find(([, key]) => options[key] !== undefined);
      if (stray) throw new SockitError('USAGE', `${stray[0]} needs --files DIR`);
      return undefined;
    }
    if ((options.open ?? '').split(',').some((name) => name.trim() === 'files')) {
      throw new SockitError(
        'USAGE',
        '--open files: the files service always needs the token; remove files from --open',
      );
    }
    let service: ReturnType<typeof filesService>;
    try {
      service = filesService({
        root: options.files,
        ...(options.filesMaxSize !== undefined
          ? { maxFileSize: parseSize(options.filesMaxSize, '--files-max-size') }
          : {}),
        ...(options.filesReserve !== undefined
          ? { reserveBytes: parseSize(options.filesReserve, '--files-reserve') }
          : {}),
        ...(options.filesStallTimeout !== undefined
          ? { stallTimeoutMs: parseIntOption(options.filesStallTimeout, '--files-stall-timeout') }
          : {}),
      });
    } catch (error) {
      if (error instanceof TypeError)
        throw new SockitError('USAGE', `--files: ${error.message}`, { cause: error });
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

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `1048576`, `64K`, `10M`, `2G`, `1T` (binary units; a trailing `B`/`iB` is accepted). */
export function parseSize(text: string, flag: string): number {
  const match = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!match)
    throw new SockitError(
      'USAGE',
      `${flag} must be a byte count like 1048576, 64K, 10M or 2G, got "${text}"`,
    );
  const bytes = Number(match[1]) * UNITS[match[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(bytes)) throw new SockitError('USAGE', `${flag} is too large`);
  return bytes;
}
