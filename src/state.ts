import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fromFileError, SockitError } from './errors.js';

/**
 * Where sockit keeps what must survive a restart: the server token, the self-signed TLS
 * certificate, and the client's pinned fingerprints (known_hosts).
 * `$SOCKIT_STATE_DIR`, else `$XDG_STATE_HOME/sockit`, else `~/.local/state/sockit`.
 */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SOCKIT_STATE_DIR) return env.SOCKIT_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'sockit');
}

export function tokenPath(stateDir: string): string {
  return join(stateDir, 'token');
}

/**
 * Writes a file atomically with exactly `mode`: a temp file (created with that mode, so a secret
 * never exists with looser permissions), fsync, rename. Readers never see half a token or key,
 * and a crash never leaves a truncated file under the final name.
 */
export function writeFileAtomic(path: string, contents: string, mode: number): void {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', mode);
  try {
    try {
      fchmodSync(fd, mode); // the umask may have stripped bits from `mode`
      writeSync(fd, contents);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** Writes a private (0600) file atomically, creating its directory (0700) if needed. */
export function writePrivateFile(path: string, contents: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw withStateHint(fromFileError(error, dirname(path), 'cannot create state directory'));
  }
  try {
    writeFileAtomic(path, contents, 0o600);
  } catch (error) {
    throw withStateHint(fromFileError(error, path, 'cannot write'));
  }
}

/** A state-dir failure says how to choose another one. */
function withStateHint(error: SockitError): SockitError {
  return new SockitError(
    error.code,
    `${error.message} (choose another with --state-dir or $SOCKIT_STATE_DIR)`,
    {
      cause: error.cause,
    },
  );
}

/** Reads the token in `path`, or creates a new random one there (mode 0600). */
export function loadOrCreateToken(path: string): { token: string; created: boolean } {
  const existing = readTokenFile(path, { optional: true });
  if (existing) return { token: existing, created: false };
  const token = randomBytes(24).toString('base64url');
  writePrivateFile(path, `${token}\n`);
  return { token, created: true };
}

/** Reads a token file; a missing file is `undefined` when optional, an error otherwise. */
export function readTokenFile(path: string, options: { optional?: boolean } = {}): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && options.optional) return undefined;
    throw fromFileError(error, path, 'cannot read token file');
  }
  const token = text.trim();
  if (token.length === 0) throw new SockitError('USAGE', `token file ${path} is empty`);
  return token;
}
