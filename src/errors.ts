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
  AUTH_FAILED: { wire: true, summary: 'The token proof did not match; the connection is closed.' },
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
    summary: 'Size or SHA-256 of transferred data does not match; nothing was published.',
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
  USAGE: { wire: false, summary: 'A command-line or option error: a bad address, a conflicting flag.' },
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

/** Maps a Node.js system error from connect/listen to a sockit error with a useful message. */
export function fromSystemError(error: unknown, what: string): SockitError {
  if (error instanceof SockitError) return error;
  const err = error as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ECONNREFUSED':
      return new SockitError('CONNECT_FAILED', `${what}: connection refused (is the server running?)`, {
        cause: err,
      });
    case 'ENOENT':
      return new SockitError('CONNECT_FAILED', `${what}: no such socket file`, { cause: err });
    case 'ETIMEDOUT':
      return new SockitError('TIMEOUT', `${what}: timed out`, { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SockitError('CONNECT_FAILED', `${what}: host unreachable (${err.code})`, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
      return new SockitError('CLOSED', `${what}: connection reset by peer`, { cause: err });
    case 'EADDRINUSE':
      return new SockitError('UNAVAILABLE', `${what}: address already in use`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new SockitError('FORBIDDEN', `${what}: permission denied`, { cause: err });
    default:
      return new SockitError('INTERNAL', `${what}: ${err?.message ?? String(error)}`, { cause: err });
  }
}
