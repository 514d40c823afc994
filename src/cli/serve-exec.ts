import type { Command } from 'commander';
import { SockitError } from '../errors.js';
import { argParsers } from '../options.js';
import { execService } from '../services/exec/index.js';
import { DURATION_HELP, splitList } from './common.js';
import type { ServePlugin } from './serve-plugins.js';

interface ExecCliOptions {
  exec?: boolean;
  execAllow?: string;
  allowShell?: boolean;
  allowPty?: boolean;
  shellCommand?: string;
  /** Milliseconds, bytes and a count: parsed by argParsers. */
  execTimeoutMax?: number;
  execMaxOutput?: number;
  execMaxRunning?: number;
  execAudit?: string;
  execCwd?: string;
  execCwdRoot?: string;
  execEnvAllow?: string;
  execSpawner?: 'native' | 'node';
  open?: string[];
  insecureNoAuth?: boolean;
}

/** Options that only mean something with the exec service on: `[flag, key]`. */
const DEPENDENT_FLAGS: readonly [string, keyof ExecCliOptions][] = [
  ['--allow-shell', 'allowShell'],
  ['--allow-pty', 'allowPty'],
  ['--shell-command', 'shellCommand'],
  ['--exec-timeout-max', 'execTimeoutMax'],
  ['--exec-max-output', 'execMaxOutput'],
  ['--exec-max-running', 'execMaxRunning'],
  ['--exec-audit', 'execAudit'],
  ['--exec-cwd', 'execCwd'],
  ['--exec-cwd-root', 'execCwdRoot'],
  ['--exec-env-allow', 'execEnvAllow'],
  ['--exec-spawner', 'execSpawner'],
];

/**
 * `sockit serve --exec` / `--exec-allow LIST`: the exec service is off unless one of them is
 * given, and never usable without the token (it cannot be put on `--open`).
 */
export const execServePlugin: ServePlugin = {
  addOptions(command: Command) {
    command
      .option('--exec', 'exec service: authenticated clients may run any program')
      .option(
        '--exec-allow <programs>',
        'exec service for these programs only (comma-separated names or absolute paths)',
      )
      .option('--allow-shell', 'exec: also accept shell strings (needs --exec)')
      .option(
        '--allow-pty',
        'exec: run commands in pseudo-terminals (exec -t) and `sockit shell`, under the same allow-list',
      )
      .option(
        '--shell-command <argv>',
        "exec: what `sockit shell` runs (space-separated argv; default: this user's login shell)",
      )
      .option(
        '--exec-timeout-max <duration>',
        `exec: longest a command may run, capping client timeouts (${DURATION_HELP}; 0 = no cap; default 1h)`,
        argParsers.duration('--exec-timeout-max'),
      )
      .option(
        '--exec-max-output <bytes>',
        'exec: stdout+stderr bytes before a command is killed (K/M/G suffixes; 0 = none; default 1G)',
        argParsers.bytes('--exec-max-output'),
      )
      .option(
        '--exec-max-running <n>',
        'exec: commands running at once across the server (default 32)',
        argParsers.positive('--exec-max-running'),
      )
      .option(
        '--exec-audit <file>',
        'exec: append one JSON line per command to FILE (default: the server log)',
      )
      .option(
        '--exec-cwd <dir>',
        'exec: working directory of commands that name none (default: the current one)',
      )
      .option(
        '--exec-cwd-root <dirs>',
        'exec: requests may only use working directories inside these (comma-separated)',
      )
      .option(
        '--exec-env-allow <names>',
        'exec: variables requests may set (comma-separated; NAME* = prefix; * = any)',
      )
      .option(
        '--exec-spawner <how>',
        'exec: "native" (vfork-style clone, no fork; default when built) or "node" (child_process)',
        argParsers.choice('--exec-spawner', ['native', 'node'] as const),
      );
  },
  create(raw, log) {
    const options = raw as ExecCliOptions;
    const enabled = options.exec === true || options.execAllow !== undefined;
    if (options.exec === true && options.execAllow !== undefined) {
      throw new SockitError(
        'USAGE',
        '--exec and --exec-allow exclude each other: --exec runs any program, --exec-allow only those listed',
      );
    }
    if (!enabled) {
      const stray = DEPENDENT_FLAGS.find(([, key]) => options[key] !== undefined);
      if (stray) throw new SockitError('USAGE', `${stray[0]} needs --exec or --exec-allow`);
      return undefined;
    }
    if (options.allowShell && options.execAllow !== undefined) {
      throw new SockitError(
        'USAGE',
        '--allow-shell and --exec-allow exclude each other: a shell string can run any program (use --exec)',
      );
    }
    if (options.shellCommand !== undefined && !options.allowPty) {
      throw new SockitError('USAGE', '--shell-command needs --allow-pty (it is what `sockit shell` runs)');
    }
    const shellCommand = options.shellCommand?.split(/\s+/).filter((word) => word.length > 0);
    if (shellCommand?.length === 0) throw new SockitError('USAGE', '--shell-command needs a program');
    if (options.open?.includes('exec')) {
      throw new SockitError(
        'USAGE',
        '--open exec: the exec service always needs the token; remove exec from --open',
      );
    }
    const allow = options.execAllow === undefined ? 'any' : splitList(options.execAllow);
    if (allow !== 'any' && allow.length === 0)
      throw new SockitError('USAGE', '--exec-allow needs at least one program');
    const envAllow = options.execEnvAllow === undefined ? undefined : splitList(options.execEnvAllow);
    const service = execService({
      allow,
      allowShell: options.allowShell === true,
      allowPty: options.allowPty === true,
      ...(shellCommand !== undefined ? { shellCommand } : {}),
      ...(options.execTimeoutMax !== undefined ? { maxTimeoutMs: options.execTimeoutMax } : {}),
      ...(options.execMaxOutput !== undefined ? { maxOutputBytes: options.execMaxOutput } : {}),
      ...(options.execMaxRunning !== undefined ? { maxRunning: options.execMaxRunning } : {}),
      ...(options.execCwd !== undefined ? { cwd: options.execCwd } : {}),
      ...(options.execCwdRoot !== undefined ? { cwdRoots: splitList(options.execCwdRoot) } : {}),
      ...(envAllow !== undefined ? { envAllow: envAllow.includes('*') ? ('any' as const) : envAllow } : {}),
      ...(options.execAudit !== undefined ? { auditFile: options.execAudit } : { audit: log }),
      ...(options.execSpawner !== undefined ? { spawner: options.execSpawner } : {}),
      log,
    });
    log.info('exec service on', {
      programs: allow === 'any' ? 'any' : allow.join(','),
      shell: options.allowShell === true,
      pty: options.allowPty === true,
      spawner: service.spawner,
      ...(options.execAudit !== undefined ? { audit: options.execAudit } : {}),
    });
    if (options.insecureNoAuth) {
      log.warn(
        'exec runs WITHOUT authentication (--insecure-no-auth): anyone who can connect may run commands',
      );
    }
    return service;
  },
};
