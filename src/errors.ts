/**
 * The one catalogue of sockit error codes.
 *
 * Wire codes travel in `error` frames (PROTOCOL section 3) and are stable across versions.
 * Local codes never go on the wire: they describe what happened on this side (a refused
 * connection, a changed TLS fingerprint) so the CLI can print one clear line and exit.
 * `docs/errors.md` documents every entry; a test keeps the two in step.
 */
export const ERROR_CATALOGUE = {
  BAD_REQUEST: { wire: true, summary: 'The request is malformed: a missing or wrongly typed field.' },
  FRAME_INVALID: { wire: true, summary: 'The bytes broke the framing rules; the connection is closed.' },
  TOO_LARGE: { wire: true, summary: 'A header, body, datagram or file is over a configured limit.' },
  UNSUPPORTED: {
    wire: true,
    summary: 'Unknown frame type, protocol version, or a service this server does not run.',
  },
  AUTH_REQUIRED: { wire: true, summary: 'The request needs an authenticated connection.' },
  AUTH_FAILED: {
    wire: true,
    summary: 'The token proof, or a data channel key, did not match; the connection is closed.',
  },
  FORBIDDEN: {
    wire: true,
    summary: 'Not allowed: a path outside the root, a command not on the allow-list.',
  },
  NOT_FOUND: { wire: true, summary: 'No such file, directory, program or request id.' },
  CONFLICT: { wire: true, summary: 'The target exists (no overwrite), a name is taken, or an id is in use.' },
  TIMEOUT: { wire: true, summary: 'A deadline passed: idle connection, handshake, request or command.' },
  BUSY: { wire: true, summary: 'A limit on connections, open requests or running commands is reached.' },
  INTEGRITY: {
    wire: true,
    summary: 'Size or checksum of transferred data does not match; nothing was published.',
  },
  UNAVAILABLE: { wire: true, summary: 'The server is shutting down or a resource (disk space) is short.' },
  INTERNAL: { wire: true, summary: 'An unexpected server-side failure; details are in the server log only.' },
  CONNECT_FAILED: {
    wire: false,
    summary: 'The connection could not be made (refused, unreachable, no such socket).',
  },
  CLOSED: { wire: false, summary: 'The connection closed before the answer arrived.' },
  TLS_FINGERPRINT_CHANGED: {
    wire: false,
    summary: "The server's TLS certificate differs from the pinned one (possible interception).",
  },
  TLS_FAILED: { wire: false, summary: 'The TLS handshake failed or the certificate was not trusted.' },
  USAGE: {
    wire: false,
    summary: 'A command-line error: a bad address, a conflicting flag, a missing argument.',
  },
  INVALID_OPTION: {
    wire: false,
    summary: 'An option value is out of range or of the wrong form (CLI flag or library option).',
  },
  CANCELLED: {
    wire: false,
    summary: 'The request was cancelled: its signal aborted, the client was destroyed, or Ctrl-C.',
  },
} as const satisfies Record<string, { wire: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Codes that may appear in an `error` frame. */
export type WireErrorCode = {
  [K in ErrorCode]: (typeof ERROR_CATALOGUE)[K]['wire'] extends true ? K : never;
}[ErrorCode];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** Every sockit failure: a stable `code`, a message that says what to do, and the `cause`. */
export class SockitError extends Error {
  readonly code: ErrorCode;
  /** Extra fields from the server's error frame (e.g. `versions` for UNSUPPORTED). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SockitError';
    this.code = code;
    this.details = options.details;
  }
}

/** Throws-ready error for a bad option value (library option or CLI flag): code INVALID_OPTION. */
export function invalidOption(message: string, cause?: unknown): SockitError {
  return new SockitError('INVALID_OPTION', message, cause === undefined ? {} : { cause });
}

/**
 * The error of a cancelled request: code CANCELLED, the abort reason (a signal's `reason`, the
 * error that made the caller give up) kept as `cause`.
 */
export function cancelled(reason?: unknown, message = 'request cancelled'): SockitError {
  if (reason instanceof SockitError && reason.code === 'CANCELLED') return reason;
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : '';
  return new SockitError(
    'CANCELLED',
    why ? `${message}: ${why}` : message,
    reason === undefined ? {} : { cause: reason },
  );
}

/** What an errno value means to sockit: its code and a few plain words. */
interface ErrnoMeaning {
  code: ErrorCode;
  reason: string;
  /** The meaning on a socket connect/listen, where it differs (ENOENT: no socket file). */
  socket?: { code: ErrorCode; reason: string };
}

/**
 * The one errno → code table. The files service, the files client, the exec spawner and the
 * socket layer all take their code from here, and wrap the reason in their own context.
 */
export const ERRNO_TABLE: Readonly<Record<string, ErrnoMeaning>> = {
  ECONNREFUSED: { code: 'CONNECT_FAILED', reason: 'connection refused (is the server running?)' },
  ECONNRESET: { code: 'CLOSED', reason: 'connection reset by peer' },
  EPIPE: { code: 'CLOSED', reason: 'connection reset by peer' },
  ETIMEDOUT: { code: 'TIMEOUT', reason: 'timed out' },
  EHOSTUNREACH: { code: 'CONNECT_FAILED', reason: 'host unreachable' },
  ENETUNREACH: { code: 'CONNECT_FAILED', reason: 'network unreachable' },
  ENOTFOUND: { code: 'CONNECT_FAILED', reason: 'host not found (no such name in DNS or /etc/hosts)' },
  EAI_AGAIN: { code: 'CONNECT_FAILED', reason: 'host name lookup failed (DNS did not answer)' },
  EADDRINUSE: { code: 'UNAVAILABLE', reason: 'address already in use' },
  EADDRNOTAVAIL: {
    code: 'UNAVAILABLE',
    reason: 'address not available on this machine (no interface has that IP)',
  },
  ENOENT: {
    code: 'NOT_FOUND',
    reason: 'no such file or directory',
    socket: { code: 'CONNECT_FAILED', reason: 'no such socket file' },
  },
  ENOTDIR: { code: 'NOT_FOUND', reason: 'a part of the path is a file, not a directory' },
  EISDIR: { code: 'BAD_REQUEST', reason: 'is a directory' },
  EEXIST: { code: 'CONFLICT', reason: 'already exists' },
  ENOTEMPTY: { code: 'CONFLICT', reason: 'directory not empty' },
  EACCES: { code: 'FORBIDDEN', reason: 'permission denied' },
  EPERM: { code: 'FORBIDDEN', reason: 'operation not permitted' },
  EROFS: { code: 'FORBIDDEN', reason: 'read-only file system' },
  ELOOP: { code: 'FORBIDDEN', reason: 'too many symbolic links' },
  ENAMETOOLONG: { code: 'FORBIDDEN', reason: 'name too long' },
  ENOSPC: { code: 'UNAVAILABLE', reason: 'no space left on the disk' },
  EDQUOT: { code: 'UNAVAILABLE', reason: 'disk quota exceeded' },
  ETXTBSY: { code: 'UNAVAILABLE', reason: 'the program file is being written' },
  EAGAIN: { code: 'UNAVAILABLE', reason: 'resource temporarily unavailable' },
  EMFILE: { code: 'UNAVAILABLE', reason: 'too many open files' },
  ENFILE: { code: 'UNAVAILABLE', reason: 'too many open files on the system' },
  ENOMEM: { code: 'UNAVAILABLE', reason: 'out of memory' },
};

/** The errno name of a Node.js system error (`ENOENT`), or undefined. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The table entry for an error's errno; `socket` picks the connect/listen meaning. */
export function errnoMeaning(error: unknown, socket = false): ErrnoMeaning | undefined {
  const errno = errnoOf(error);
  const meaning = errno === undefined ? undefined : ERRNO_TABLE[errno];
  return socket && meaning?.socket ? { ...meaning, ...meaning.socket } : meaning;
}

/**
 * Maps a Node.js system error from connect/listen to a sockit error with a useful message:
 * `what: reason`. Unknown errors become INTERNAL with their own message.
 */
export function fromSystemError(error: unknown, what: string): SockitError {
  if (error instanceof SockitError) return error;
  const meaning = errnoMeaning(error, true);
  if (meaning) return new SockitError(meaning.code, `${what}: ${meaning.reason}`, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new SockitError('INTERNAL', `${what}: ${message}`, { cause: error });
}

/**
 * A local file error (a log file, a known_hosts file, a certificate): `path: reason`, with the
 * table's code, never a socket wording. Unknown errors keep their message.
 */
export function fromFileError(error: unknown, path: string, what = ''): SockitError {
  if (error instanceof SockitError) return error;
  const meaning = errnoMeaning(error);
  const prefix = what === '' ? path : `${what} ${path}`;
  if (meaning) return new SockitError(meaning.code, `${prefix}: ${meaning.reason}`, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new SockitError('INTERNAL', `${prefix}: ${message}`, { cause: error });
}
