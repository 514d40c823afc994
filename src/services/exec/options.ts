import { userInfo } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { invalidOption } from '../../errors.js';
import type { Logger } from '../../log.js';
import { checkInteger } from '../../options.js';
import { hasNativeSpawner, hasPty, type Spawner } from './spawner.js';

/** The exec service's settings. `allow` is required: remote execution is never on by accident. */
export interface ExecServiceOptions {
  /**
   * Which programs clients may run: `'any'`, or a list matched exactly against `argv[0]`.
   * Bare names (`ls`) are looked up on the server's PATH; absolute paths match only themselves.
   */
  allow: 'any' | readonly string[];
  /** Accept `shell` requests (run as `shellPath -c STRING`). Needs `allow: 'any'`. Default false. */
  allowShell?: boolean;
  /** The shell for `shell` requests. Default `/bin/sh`. */
  shellPath?: string;
  /**
   * Run commands in pseudo-terminals (`sockit exec -t`) and `login` requests (`sockit shell`),
   * under the same allow-list. Needs the native addon; without it this option throws. Default false.
   */
  allowPty?: boolean;
  /** What a `login` request (`sockit shell`) runs, as argv. Default: the server user's login shell, as a login shell. */
  shellCommand?: readonly string[];
  /** Longest a command may run; caps a request's `timeoutMs` and applies when it gives none. 0 = no cap. Default 1 hour. */
  maxTimeoutMs?: number;
  /** Bytes of stdout + stderr after which the command is killed and reported `truncated`. 0 = no limit. Default 1 GiB. */
  maxOutputBytes?: number;
  /** Commands running at once across the whole server; past it a request gets BUSY. Default 32. */
  maxRunning?: number;
  /** Working directory of a request that names none; relative request `cwd`s resolve against it. Default: the first of `cwdRoots`, else `process.cwd()`. */
  cwd?: string;
  /** When set, a request's `cwd` must lie inside one of these directories (symlinks resolved). */
  cwdRoots?: readonly string[];
  /**
   * Variables a request may set in `env`: `'any'`, or names where a trailing `*` matches a prefix.
   * Default: `'any'` with `allow: 'any'`; with an allow-list only locale and terminal settings
   * (`LANG`, `LC_*`, `TZ`, `TERM`), since `PATH` or `LD_PRELOAD` would let a client escape it.
   */
  envAllow?: 'any' | readonly string[];
  /** The environment every command starts from. Default: the server's, without `SOCKIT_TOKEN`. */
  baseEnv?: NodeJS.ProcessEnv;
  /** Receives one `exec` audit entry per request (run or refused). */
  audit?: Logger;
  /** Appends the audit entries as JSON lines to this file (created with mode 0600). */
  auditFile?: string;
  /** Diagnostics (a failed kill, an audit file that cannot be written). */
  log?: Logger;
  /**
   * How commands are started: `'native'` (clone with CLONE_VM | CLONE_VFORK, no fork of the
   * server; needs the addon that `npm install` builds on Linux) or `'node'`
   * (child_process.spawn). Default: native when built, else node.
   */
  spawner?: Spawner;
}

/** Options after defaults and checks; what the running service reads. */
export interface ResolvedExecOptions {
  allow: 'any' | ReadonlySet<string>;
  allowShell: boolean;
  shellPath: string;
  allowPty: boolean;
  shellCommand: readonly string[] | undefined;
  /** The login shell a `login` request runs when there is no shellCommand. */
  loginShell: string;
  maxTimeoutMs: number;
  maxOutputBytes: number;
  maxRunning: number;
  cwd: string;
  cwdRoots: readonly string[] | undefined;
  envAllow: 'any' | { names: ReadonlySet<string>; prefixes: readonly string[] };
  baseEnv: NodeJS.ProcessEnv;
  spawner: Spawner;
}

/** Variables a client may set when the server runs an allow-list and says nothing else. */
const SAFE_ENV_NAMES: readonly string[] = ['LANG', 'LC_*', 'TZ', 'TERM'];

const EXEC_DEFAULTS = Object.freeze({
  shellPath: '/bin/sh',
  maxTimeoutMs: 3_600_000,
  maxOutputBytes: 1024 * 1024 * 1024,
  maxRunning: 32,
});

/** Merges the defaults and checks every field; a bad or conflicting option is a TypeError naming it. */
export function resolveExecOptions(options: ExecServiceOptions): ResolvedExecOptions {
  const allow = resolveAllow(options.allow);
  const allowShell = options.allowShell ?? false;
  if (allowShell && allow !== 'any') {
    throw invalidOption(
      'exec options allowShell and allow (a list) exclude each other: a shell string can run any program',
    );
  }
  const cwdRoots = options.cwdRoots?.map((root) => {
    if (typeof root !== 'string' || root.length === 0)
      throw invalidOption('exec cwdRoots entries must be paths');
    return resolve(root);
  });
  if (cwdRoots && cwdRoots.length === 0) throw invalidOption('exec option cwdRoots must not be empty');
  const cwd = resolve(options.cwd ?? cwdRoots?.[0] ?? process.cwd());
  const envAllow = options.envAllow ?? (allow === 'any' ? 'any' : SAFE_ENV_NAMES);
  const baseEnv = { ...(options.baseEnv ?? process.env) };
  // The server's own secret has no business in a command's environment.
  delete baseEnv.SOCKIT_TOKEN;
  const spawner = options.spawner ?? (hasNativeSpawner() ? 'native' : 'node');
  if (spawner !== 'native' && spawner !== 'node') {
    throw invalidOption(`exec option spawner must be "native" or "node", got "${String(spawner)}"`);
  }
  if (spawner === 'native' && !hasNativeSpawner()) {
    throw invalidOption('exec option spawner "native": the addon is not built (see npm install output)');
  }
  const allowPty = options.allowPty ?? false;
  if (allowPty && !hasPty()) {
    throw invalidOption(
      'exec option allowPty (--allow-pty): pseudo-terminals are unavailable here (they need the native addon, which did not build or load; see npm install output)',
    );
  }
  const shellCommand = options.shellCommand === undefined ? undefined : [...options.shellCommand];
  if (
    shellCommand &&
    (shellCommand.length === 0 ||
      !shellCommand.every((arg) => typeof arg === 'string' && arg.length > 0 && !arg.includes('\0')))
  ) {
    throw invalidOption('exec option shellCommand must be a non-empty argv of non-empty strings');
  }
  return {
    allow,
    allowShell,
    shellPath: options.shellPath ?? EXEC_DEFAULTS.shellPath,
    allowPty,
    shellCommand,
    loginShell: loginShellOf(baseEnv),
    maxTimeoutMs: count(options.maxTimeoutMs, 'maxTimeoutMs', EXEC_DEFAULTS.maxTimeoutMs, 0),
    maxOutputBytes: count(options.maxOutputBytes, 'maxOutputBytes', EXEC_DEFAULTS.maxOutputBytes, 0),
    maxRunning: count(options.maxRunning, 'maxRunning', EXEC_DEFAULTS.maxRunning, 1),
    cwd,
    cwdRoots,
    envAllow: envAllow === 'any' ? 'any' : resolveEnvAllow(envAllow),
    baseEnv,
    spawner,
  };
}

function resolveAllow(allow: ExecServiceOptions['allow']): ResolvedExecOptions['allow'] {
  if (allow === 'any') return 'any';
  if (!Array.isArray(allow)) {
    throw invalidOption('exec option allow must be "any" or a list of programs');
  }
  const programs = new Set<string>();
  for (const program of allow as readonly unknown[]) {
    if (typeof program !== 'string' || program.length === 0 || program.includes('\0')) {
      throw invalidOption(`exec allow-list entry ${JSON.stringify(program)} is not a program name`);
    }
    if (program.includes('/') && !isAbsolute(program)) {
      throw invalidOption(`exec allow-list entry "${program}" must be a bare name or an absolute path`);
    }
    programs.add(program);
  }
  if (programs.size === 0) throw invalidOption('exec allow-list is empty: name at least one program');
  return programs;
}

function resolveEnvAllow(list: readonly string[]): { names: Set<string>; prefixes: string[] } {
  const names = new Set<string>();
  const prefixes: string[] = [];
  for (const entry of list) {
    if (typeof entry !== 'string' || entry.length === 0)
      throw invalidOption('exec envAllow entries must be names');
    if (entry.endsWith('*')) prefixes.push(entry.slice(0, -1));
    else names.add(entry);
  }
  return { names, prefixes };
}

function count(value: number | undefined, name: string, fallback: number, min: number): number {
  return value === undefined ? fallback : checkInteger(value, `exec option ${name}`, min);
}

/** The server user's login shell: the password database, else $SHELL, else /bin/sh. */
function loginShellOf(env: NodeJS.ProcessEnv): string {
  let shell: string | null | undefined;
  try {
    shell = userInfo().shell;
  } catch {
    shell = undefined; // no passwd entry (a container's arbitrary uid)
  }
  return shell || env.SHELL || '/bin/sh';
}
