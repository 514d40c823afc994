import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
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

/** Writes a private (0600) file atomically, creating its directory (0700) if needed; the directory must be one only we can write to. */
export function writePrivateFile(path: string, contents: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw withStateHint(fromFileError(error, dirname(path), 'cannot create state directory'));
  }
  checkPrivateDir(dirname(path));
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

/**
 * Reads a token file; a missing file is `undefined` when optional, an error otherwise. The file
 * and its directory are checked as ssh checks its keys (`readPrivateFile`).
 */
export function readTokenFile(path: string, options: { optional?: boolean } = {}): string | undefined {
  const text = readPrivateFile(path, 'token file', options);
  if (text === undefined) return undefined;
  const token = text.trim();
  if (token.length === 0) throw new SockitError('USAGE', `token file ${path} is empty`);
  return token;
}

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = constants;

/**
 * Reads a secret only from a file no one else controls: a regular file (opened with O_NOFOLLOW,
 * so a symlink to someone else's file is never followed), owned by us, with no group or other
 * permission bits, in a directory owned by us (or root) that no one else can write to (who can
 * write the directory can swap the file). Each refusal is one USAGE line that says how to fix it.
 */
export function readPrivateFile(
  path: string,
  what: string,
  options: { optional?: boolean } = {},
): string | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted under the name must not hang the open.
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && options.optional) return undefined;
    if (code === 'ELOOP') {
      throw new SockitError(
        'USAGE',
        `${what} ${path} is a symlink; secrets are read only from regular files: put the token itself there (then chmod 600 ${path})`,
      );
    }
    throw fromFileError(error, path, `cannot read ${what}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new SockitError('USAGE', `${what} ${path} is not a regular file`);
    checkOwner(stats, path, what);
    if ((stats.mode & 0o077) !== 0) {
      throw new SockitError(
        'USAGE',
        `${what} ${path} has mode ${octal(stats.mode)}: others may read it; make it private with chmod 600 ${path}`,
      );
    }
    checkPrivateDir(dirname(path));
    return readFileSync(fd, 'utf8');
  } catch (error) {
    if (error instanceof SockitError) throw error;
    throw new SockitError('USAGE', `cannot read ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * A directory that holds secrets (the state dir, a token file's directory) must be owned by us
 * or root and not be group- or world-writable; USAGE with the fix otherwise.
 */
export function checkPrivateDir(path: string): void {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new SockitError('USAGE', `cannot use directory ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!stats.isDirectory()) throw new SockitError('USAGE', `${path} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid && stats.uid !== 0) {
    throw new SockitError(
      'USAGE',
      `directory ${path} is owned by uid ${stats.uid}, not by you (uid ${uid}): use a state directory of your own (--state-dir), or chown ${uid} ${path}`,
    );
  }
  if ((stats.mode & 0o022) !== 0) {
    throw new SockitError(
      'USAGE',
      `directory ${path} has mode ${octal(stats.mode)}: others can replace the files in it; fix it with chmod go-w ${path}`,
    );
  }
}

function checkOwner(stats: Stats, path: string, what: string): void {
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    throw new SockitError(
      'USAGE',
      `${what} ${path} is owned by uid ${stats.uid}, not by you (uid ${uid}): use your own file, or chown ${uid} ${path}`,
    );
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}
