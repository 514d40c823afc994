import { SockitError } from '../../errors.js';
import { silentLogger } from '../../log.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import type { ServerRequest } from '../../server/request.js';
import type { Service } from '../../server/service.js';
import { createAuditSink, type ExecAuditEntry } from './audit.js';
import { type CommandOutcome, RunningCommand } from './command.js';
import { type ExecServiceOptions, resolveExecOptions } from './options.js';
import { type ExecPlan, type ExecRequestFields, execRequestFields, planExec, releasePlan } from './policy.js';
import type { Spawner } from './spawner.js';

/** The exec service, with a count of what it runs (for status and tests). */
export interface ExecService extends Service {
  /** Requests admitted and not yet over: being checked or running. */
  readonly running: number;
  /** How this service starts commands (options `spawner`). */
  readonly spawner: Spawner;
}

/**
 * Remote command execution (PROTOCOL section 4, exec). Commands run without a shell, each in
 * its own process group; requests need an authenticated connection whatever the server's open
 * services say, and a server-wide cap on running commands answers BUSY past it.
 *
 * @example
 * serve({ listen: 'tcp://127.0.0.1:7070', services: [execService({ allow: ['uname', 'uptime'] })] });
 */
export function execService(options: ExecServiceOptions): ExecService {
  const settings = resolveExecOptions(options);
  const log = options.log ?? silentLogger;
  const audit = createAuditSink({ logger: options.audit, file: options.auditFile, log });
  const commands = new Set<RunningCommand>();
  let admitted = 0;
  let closing = false;

  /** Answers `request` with `error` instead of running it, with its audit line. */
  function refuse(request: ServerRequest, error: SockitError, fields?: ExecRequestFields): void {
    audit.record({ ...where(request), ...describe(fields), outcome: 'refused', error: error.code });
    request.fail(error.code, error.message);
  }

  async function exec(request: ServerRequest): Promise<void> {
    const fields = execRequestFields(request.header as HeaderOfType<'exec'>);
    // Defence in depth: even if an operator lists exec among the open services, it never runs
    // for a connection that did not prove the token (--insecure-no-auth marks every connection proven).
    if (!request.connection.authenticated) {
      refuse(
        request,
        new SockitError('AUTH_REQUIRED', 'exec needs authentication: set SOCKIT_TOKEN or pass --token-file'),
        fields,
      );
      return;
    }
    if (closing) {
      refuse(request, new SockitError('UNAVAILABLE', 'server is shutting down'), fields);
      return;
    }
    if (admitted >= settings.maxRunning) {
      refuse(
        request,
        new SockitError(
          'BUSY',
          `the server is running its maximum of ${settings.maxRunning} commands; try again later`,
        ),
        fields,
      );
      return;
    }
    admitted++;
    const command = new RunningCommand(request, settings, log);
    // Set before the first await: a stdin frame may already be right behind the request.
    request.onFrame = (frame) => command.onFrame(frame);
    try {
      let plan: ExecPlan;
      try {
        // Synchronous for a request in the default directory: no await stands between the
        // request and its spawn (see planExec).
        const planned = planExec(fields, settings);
        plan = planned instanceof Promise ? await planned : planned;
      } catch (error) {
        command.abandon();
        if (!(error instanceof SockitError)) throw error;
        refuse(request, error, fields);
        return;
      }
      try {
        // An audit file that is behind holds new commands back rather than losing their records.
        if (audit.behind) await readyOrAborted(audit.ready(), request);
        if (request.aborted) {
          // Cancelled or disconnected while we checked: the client has stopped listening.
          command.abandon();
          audit.record({ ...where(request), ...describe(fields), outcome: 'cancelled' });
          request.finish();
          return;
        }
        commands.add(command);
        // The spawn is synchronous: the child is in its directory now.
        command.start(plan, fields.channel);
      } finally {
        const released = releasePlan(plan);
        if (released) await released;
      }
      const outcome = await command.done;
      const ran = fields.login ? { argv: plan.argv } : {};
      audit.record({ ...where(request), ...describe(fields), ...ran, cwd: plan.cwd, ...summarize(outcome) });
    } finally {
      admitted--;
      commands.delete(command);
    }
  }

  return {
    name: 'exec',
    requests: { exec },
    // Malformed, or on a connection that may not run commands: refused before `exec` ran, and
    // still one audit line per request.
    refused(header, connection, error) {
      audit.record({
        peer: connection.peer,
        connection: connection.id,
        id: header.id!,
        outcome: 'refused',
        error: error.code,
      });
    },
    spawner: settings.spawner,
    get running() {
      return admitted;
    },
    async close() {
      closing = true;
      const ending = [...commands].map((command) => {
        command.kill('shutdown');
        return command.done;
      });
      await Promise.all(ending);
      await audit.close();
    },
  };
}

/** Who sent a request, as its audit line starts. */
function where(request: ServerRequest): Pick<ExecAuditEntry, 'peer' | 'connection' | 'id'> {
  return { peer: request.connection.peer, connection: request.connection.id, id: request.id };
}

/** Waits for `ready`, or less if the request is aborted meanwhile (the caller then sees `aborted`). */
function readyOrAborted(ready: Promise<void>, request: ServerRequest): Promise<void> {
  if (request.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    request.onAbort(() => resolve());
    void ready.then(() => resolve());
  });
}

function describe(fields: ExecRequestFields | undefined): Partial<ExecAuditEntry> {
  if (!fields) return {};
  const described: Partial<ExecAuditEntry> = fields.argv
    ? { argv: fields.argv }
    : fields.login
      ? { login: true }
      : { shell: fields.shell! };
  if (fields.pty) described.pty = true;
  if (fields.cwd !== undefined) described.cwd = fields.cwd;
  if (fields.env) described.envNames = Object.keys(fields.env);
  return described;
}

function summarize(outcome: CommandOutcome): Omit<ExecAuditEntry, 'peer' | 'connection' | 'id'> {
  const entry: Omit<ExecAuditEntry, 'peer' | 'connection' | 'id'> = {
    outcome: outcome.error === undefined ? 'exit' : 'failed',
    pid: outcome.pid,
    code: outcome.code,
    signal: outcome.signal,
    timedOut: outcome.timedOut,
    truncated: outcome.truncated,
    durationMs: outcome.durationMs,
    bytesOut: outcome.stdoutBytes + outcome.stderrBytes,
    stdoutBytes: outcome.stdoutBytes,
    stderrBytes: outcome.stderrBytes,
    stdinBytes: outcome.stdinBytes,
  };
  if (outcome.error !== undefined) entry.error = outcome.error;
  if (outcome.killedBy !== undefined) entry.killedBy = outcome.killedBy;
  if (outcome.channel) entry.channel = true;
  return entry;
}
