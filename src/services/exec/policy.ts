import { constants } from 'node:fs';
import { type FileHandle, open, readlink, realpath, stat } from 'node:fs/promises';
import { basename, resolve, sep } from 'node:path';
import { errnoMeaning, SockitError } from '../../errors.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import type { ResolvedExecOptions } from './options.js';

/** Everything needed to start one command, checked against the server's policy. */
export interface ExecPlan {
  /** The argv the client sent, or undefined for a shell string. */
  readonly argv: readonly string[] | undefined;
  /** The shell string the client sent, or undefined for argv. */
  readonly shell: string | undefined;
  /** What `spawn` gets: the program and its arguments. */
  readonly file: string;
  readonly args: readonly string[];
  /** The working directory's real path (what the audit log records). */
  readonly cwd: string;
  /**
   * With `cwdRoots`: the working directory, held open. It was checked through this descriptor
   * and the command starts there by it, so swapping the path (for a symlink to `/`, say) after
   * the check changes nothing. Whoever starts the plan closes it (`releasePlan`).
   */
  readonly cwdHandle?: FileHandle | undefined;
  readonly env: NodeJS.ProcessEnv;
  /** Names of the variables the request set (values stay out of the audit log). */
  readonly envNames: readonly string[];
  /** Effective timeout in ms after the server's cap; 0 = none. */
  readonly timeoutMs: number;
  /** Whether the client will send stdin; otherwise the command reads /dev/null. */
  readonly stdin: boolean;
  /** argv[0] when it is not `file` (a login shell's `-bash`). */
  readonly argv0?: string;
  /** Run in a pseudo-terminal of this size (stdin, stdout and stderr are its slave side). */
  readonly pty?: PtyRequest;
}

/** A request's terminal: the client's TERM and window size. */
export interface PtyRequest {
  readonly term: string;
  readonly rows: number;
  readonly cols: number;
}

/** The parts of a request that need no I/O to check, as they arrived (for the audit log even when refused). */
export interface ExecRequestFields {
  argv: readonly string[] | undefined;
  shell: string | undefined;
  cwd: string | undefined;
  env: Readonly<Record<string, string>> | undefined;
  timeoutMs: number | undefined;
  stdin: boolean;
  /** `sockit shell`: run the server's shell (its --shell-command or the user's login shell). */
  login: boolean;
  pty: PtyRequest | undefined;
  /** With `pty`: the client can carry the terminal's bytes over a data channel. */
  channel: boolean;
}

/**
 * The fields of an `exec` header the connection already checked against the catalogue
 * (protocol/exec.ts: types, bounds, exactly one of argv/shell/login), as the policy reads them.
 */
export function execRequestFields(header: HeaderOfType<'exec'>): ExecRequestFields {
  return {
    argv: header.argv,
    shell: header.shell,
    cwd: header.cwd,
    env: header.env,
    timeoutMs: header.timeoutMs,
    stdin: header.stdin === true,
    login: header.login === true,
    pty: header.pty,
    channel: header.channel === true && header.pty !== undefined,
  };
}

/**
 * Applies the allow-list, shell and env policy (FORBIDDEN) and resolves the working directory.
 * A request in the server's default directory, once that has been checked, needs no I/O: its
 * plan comes back at once, not as a promise, so the command starts in the turn its request
 * arrived (no microtask hops before the spawn). A refusal then throws instead of rejecting.
 */
export function planExec(
  fields: ExecRequestFields,
  options: ResolvedExecOptions,
): ExecPlan | Promise<ExecPlan> {
  const { argv, shell } = fields;
  if ((fields.pty || fields.login) && !options.allowPty) {
    throw new SockitError(
      'FORBIDDEN',
      'this server does not run terminals or shells for `sockit shell` (its operator can allow them with --allow-pty)',
    );
  }
  const login = fields.login ? loginCommand(options) : undefined;
  if (shell !== undefined && !options.allowShell) {
    throw new SockitError(
      'FORBIDDEN',
      'this server does not run shell strings (its operator can allow them with --allow-shell); send argv instead',
    );
  }
  if (argv !== undefined && options.allow !== 'any' && !options.allow.has(argv[0]!)) {
    throw new SockitError(
      'FORBIDDEN',
      `"${argv[0]}" is not on this server's allow-list (${[...options.allow].join(', ')})`,
    );
  }
  if (
    login &&
    options.allow !== 'any' &&
    !login.allowedAs.some((name) => (options.allow as Set<string>).has(name))
  ) {
    throw new SockitError(
      'FORBIDDEN',
      `the server's shell "${login.file}" is not on its allow-list (${[...options.allow].join(', ')})`,
    );
  }
  const envNames = Object.keys(fields.env ?? {});
  for (const name of envNames) {
    if (!envAllowed(name, options.envAllow)) {
      throw new SockitError(
        'FORBIDDEN',
        `this server does not let requests set ${name} (its operator can allow it with --exec-env-allow)`,
      );
    }
  }
  const requested = fields.timeoutMs ?? 0;
  const timeoutMs =
    options.maxTimeoutMs === 0
      ? requested
      : Math.min(requested || options.maxTimeoutMs, options.maxTimeoutMs);
  let env = fields.env ? { ...options.baseEnv, ...fields.env } : options.baseEnv;
  // The terminal type comes with the terminal, as ssh sends it: not subject to envAllow.
  if (fields.pty) env = { ...env, TERM: fields.pty.term };
  const plan = (cwd: { path: string; handle?: FileHandle | undefined }): ExecPlan => ({
    argv: login ? [login.file, ...login.args] : argv,
    shell,
    file: login ? login.file : shell !== undefined ? options.shellPath : argv![0]!,
    args: login ? login.args : shell !== undefined ? ['-c', shell] : argv!.slice(1),
    cwd: cwd.path,
    cwdHandle: cwd.handle,
    env,
    envNames,
    timeoutMs,
    stdin: fields.stdin || fields.pty !== undefined,
    ...(login?.argv0 !== undefined ? { argv0: login.argv0 } : {}),
    ...(fields.pty ? { pty: fields.pty } : {}),
  });
  if (options.cwdRoots) return holdCwd(fields.cwd ?? options.cwd, options, options.cwdRoots).then(plan);
  if (fields.cwd !== undefined) return checkCwd(fields.cwd, options).then((path) => plan({ path }));
  if (checkedDefaults.has(options)) return plan({ path: options.cwd });
  return defaultCwd(options).then((path) => plan({ path }));
}

/**
 * What `sockit shell` runs: the server's `shellCommand`, else the server user's login shell
 * as a login shell (argv[0] `-bash`, as login(1) and sshd start it). `allowedAs` are the
 * allow-list entries that admit it: the configured name, or the shell's path or bare name.
 */
function loginCommand(options: ResolvedExecOptions): {
  file: string;
  args: string[];
  argv0?: string;
  allowedAs: string[];
} {
  if (options.shellCommand) {
    const [file, ...args] = options.shellCommand;
    return { file: file!, args, allowedAs: [file!] };
  }
  const file = options.loginShell;
  return { file, args: [], argv0: `-${basename(file)}`, allowedAs: [file, basename(file)] };
}

/**
 * Closes what a plan holds (its working directory); call once the command started, or will not.
 * A plan that holds nothing has nothing to wait for (undefined, not a promise).
 */
export function releasePlan(plan: ExecPlan): Promise<void> | undefined {
  return plan.cwdHandle?.close().catch(() => {});
}

function envAllowed(name: string, allow: ResolvedExecOptions['envAllow']): boolean {
  if (allow === 'any') return true;
  return allow.names.has(name) || allow.prefixes.some((prefix) => name.startsWith(prefix));
}

// The default directory is checked once, at the first request, not on every command.
const checkedDefaults = new WeakSet<ResolvedExecOptions>();

async function defaultCwd(options: ResolvedExecOptions): Promise<string> {
  if (!checkedDefaults.has(options)) {
    await checkCwd(options.cwd, options);
    checkedDefaults.add(options);
  }
  return options.cwd;
}

/** Without roots, a request's directory must exist (NOT_FOUND); with roots `holdCwd` checks it. */
async function checkCwd(requested: string, options: ResolvedExecOptions): Promise<string> {
  const path = resolve(options.cwd, requested);
  let real: string;
  try {
    real = await realpath(path);
    if (!(await stat(real)).isDirectory()) {
      throw new SockitError('BAD_REQUEST', `working directory ${requested} is not a directory`);
    }
  } catch (error) {
    if (error instanceof SockitError) throw error;
    throw cwdFailure(error, requested);
  }
  return real;
}

const { O_RDONLY, O_DIRECTORY } = constants;

/**
 * Opens the requested directory and checks where the *opened* directory is (its
 * /proc/self/fd link), not where the path pointed a moment earlier: check and use are the same
 * inode. FORBIDDEN outside the roots, NOT_FOUND/BAD_REQUEST as `checkCwd` says them.
 */
async function holdCwd(
  requested: string,
  options: ResolvedExecOptions,
  cwdRoots: readonly string[],
): Promise<{ path: string; handle: FileHandle }> {
  let handle: FileHandle;
  try {
    handle = await open(resolve(options.cwd, requested), O_RDONLY | O_DIRECTORY);
  } catch (error) {
    throw cwdFailure(error, requested);
  }
  try {
    let real: string;
    try {
      real = await readlink(`/proc/self/fd/${handle.fd}`);
    } catch (error) {
      throw cwdFailure(error, requested);
    }
    const roots = await realRoots(options, cwdRoots);
    if (real.endsWith(' (deleted)') || !insideRoots(real, roots)) {
      throw new SockitError(
        'FORBIDDEN',
        `working directory ${requested} is outside the directories this server allows (${cwdRoots.join(', ')})`,
      );
    }
    return { path: real, handle };
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

function insideRoots(real: string, roots: readonly string[]): boolean {
  return roots.some((root) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep));
}

function cwdFailure(error: unknown, requested: string): SockitError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOTDIR')
    return new SockitError('BAD_REQUEST', `working directory ${requested} is not a directory`);
  if (errnoMeaning(error)?.code === 'FORBIDDEN') {
    return new SockitError('FORBIDDEN', `working directory ${requested}: permission denied`);
  }
  return new SockitError('NOT_FOUND', `working directory ${requested} does not exist on the server`);
}

// The roots' real paths, resolved at the first request rather than on every one (a root that
// does not exist yet is resolved again next time).
const resolvedRoots = new WeakMap<ResolvedExecOptions, readonly string[]>();

async function realRoots(options: ResolvedExecOptions, roots: readonly string[]): Promise<readonly string[]> {
  const cached = resolvedRoots.get(options);
  if (cached) return cached;
  let missing = false;
  const real = await Promise.all(
    roots.map((root) =>
      realpath(root).catch(() => {
        missing = true;
        return root;
      }),
    ),
  );
  if (!missing) resolvedRoots.set(options, real);
  return real;
}
