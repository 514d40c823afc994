import type { Stats } from 'node:fs';
import { invalidOption, SockitError } from '../../errors.js';
import { checkInteger } from '../../options.js';
import type { FileEntry } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import { DirectorySyncs } from '../../storage/directory-sync.js';
import { Jail } from './jail.js';
import { UploadLocks } from './upload-locks.js';

/** Options of the files service (`sockit serve --files DIR …`). */
export interface FilesOptions {
  /** The directory served; every path resolves inside it. */
  root: string;
  /** Largest file a put may announce, in bytes (TOO_LARGE above). Default: no limit. */
  maxFileSize?: number;
  /** Free space a put must leave on the disk, in bytes (UNAVAILABLE otherwise). Default 0. */
  reserveBytes?: number;
  /**
   * An upload that receives nothing for this long (while its disk writes are done) fails with
   * TIMEOUT and keeps its partial file for a resume. Default 120 000; 0 = never.
   */
  stallTimeoutMs?: number;
}

/** What every files handler shares: the jail, the upload locks, the checked options. */
export interface FilesContext {
  readonly jail: Jail;
  readonly locks: UploadLocks;
  /** Publishes into one directory share its fsyncs (group commit). */
  readonly directorySyncs: DirectorySyncs;
  readonly maxFileSize: number;
  readonly reserveBytes: number;
  readonly stallTimeoutMs: number;
}

/** Checks the options (INVALID_OPTION naming the field) and opens the root. */
export function createFilesContext(options: FilesOptions): FilesContext {
  if (typeof options.root !== 'string' || options.root.length === 0) {
    throw invalidOption('files option root must name a directory');
  }
  const count = (name: keyof FilesOptions, fallback: number): number => {
    return checkInteger(options[name] ?? fallback, `files option ${name}`);
  };
  return {
    jail: Jail.open(options.root),
    locks: new UploadLocks(),
    directorySyncs: new DirectorySyncs(),
    maxFileSize: count('maxFileSize', Number.MAX_SAFE_INTEGER),
    reserveBytes: count('reserveBytes', 0),
    stallTimeoutMs: count('stallTimeoutMs', 120_000),
  };
}

/**
 * Files never run for a connection that did not authenticate, even if the operator listed the
 * service in `--open`: only `--insecure-no-auth` (which authenticates everyone) opens them.
 */
export function requireAuthenticated(request: ServerRequest): void {
  if (!request.connection.authenticated) {
    throw new SockitError(
      'AUTH_REQUIRED',
      'the files service needs authentication: set SOCKIT_TOKEN or pass --token-file',
    );
  }
}

/** The entry of a file or directory. */
export function toEntry(path: string, stats: Stats): FileEntry {
  return {
    path,
    kind: stats.isDirectory() ? 'dir' : 'file',
    size: stats.isDirectory() ? 0 : stats.size,
    mtimeMs: stats.mtimeMs,
    mode: stats.mode & 0o7777,
  };
}
