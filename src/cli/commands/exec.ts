import { constants } from 'node:os';
import { type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { isatty } from 'node:tty';
import type { Client } from '../../client/client.js';
import type { ExecCommand, ExecExit, RemoteProcess } from '../../client/exec.js';
import { SockitError } from '../../errors.js';
import { argParsers, parseDuration, parsePositiveInteger } from '../../options.js';
import { type Command, Option } from '../commander.js';
import {
  addClientOptions,
  type ClientCliOptions,
  collect,
  DURATION_HELP,
  splitList,
  withClient,
} from '../common.js';
import {
  describeError,
  describeExit,
  EXEC_EXIT,
  exitForError,
  printError,
  stdinIsDevNull,
  type TargetResult,
} from '../exec-common.js';
// Fleets (--hosts, fan-out) load fleet.js when used: one server must not pay for it at start-up.
import type { FleetHost, HostOutcome } from '../fleet.js';
import { addTerminalOptions, chooseTerminal, runInTerminal, type TerminalCliOptions } from '../terminal.js';

/** Options of `sockit exec`; `sockit shell` has the same but --shell. */
export interface ExecCliOptions extends ClientCliOptions, TerminalCliOptions {
  /** Milliseconds (argParsers.duration). */
  timeout?: number;
  cwd?: string;
  env: string[];
  shell?: string;
  stdin: boolean;
  hosts?: string;
  group?: string[];
  par?: string;
  hostTimeout?: string;
  groupOutput?: boolean;
  outdir?: string;
  json?: boolean;
}

/** A parsed request: what runs, with which variables and timeout. */
export interface ExecCliRequest {
  command: ExecCommand;
  env: Record<string, string> | undefined;
  timeoutMs: number | undefined;
}

/** Ctrl-C presses forwarded as SIGINT before the command is cancelled outright. */
const FORWARDED_INTERRUPTS = 2;

/**
 * Waits between a fan-out's attempts on a BUSY server: up to 100 ms at first, doubling to at
 * most 2 s, never under 20 ms. Short: a server's slots free up as fast as its commands end
 * (a fleet of short commands frees one every few milliseconds).
 */
const BUSY_BACKOFF = { initialMs: 100, capMs: 2000, floorMs: 20 } as const;

/** How long a fan-out keeps asking a BUSY server without --host-timeout. */
const BUSY_RETRY_MS = 60_000;

/** The server's "try again later": it runs as many commands as it may. */
function isBusy(error: unknown): boolean {
  return error instanceof SockitError && error.code === 'BUSY';
}

export function registerExec(program: Command): void {
  const command = addClientOptions(
    program
      .command('exec')
      .description(
        'run a command on a server like `ssh HOST CMD` (stdout, stderr, stdin, Ctrl-C, exit code); ' +
          'several comma-separated addresses run it on all of them in parallel',
      )
      .argument('<addresses>', 'server address, or ADDR1,ADDR2,… to fan out')
      .argument('[command...]', 'program and arguments, after -- (run without a shell)')
      .option(
        '--timeout <duration>',
        `kill the command (its whole process group) after this long (${DURATION_HELP}); the server caps it`,
        argParsers.duration('--timeout'),
      )
      .option('--cwd <dir>', 'working directory on the server')
      .option('--env <K=V>', 'set a variable for the command (repeatable)', collect, [])
      // -e is --exec in listen/connect (as in ncat); here it only points at the long name.
      .addOption(new Option('-e <K=V>').hideHelp().argParser(envShortHint))
      .option('--shell <string>', 'run this shell string instead of a program (the server must allow shells)')
      .option(
        '-n, --no-stdin',
        'do not forward local stdin (by default it is, unless it is a terminal or /dev/null)',
      )
      .option(
        '--hosts <file>',
        'run on the hosts of this inventory (ADDRESS, NAME = ADDRESS, [group] lines); the command is then every word after the options',
      )
      .option(
        '-g, --group <names>',
        'with --hosts: only these groups (comma-separated, repeatable)',
        collect,
        [],
      )
      .option('--par <n>', 'servers at once (default 32)')
      .option(
        '--host-timeout <duration>',
        'give up on a server (connecting, asking again while it answers BUSY, running) after this long: exit 124 for it',
      )
      .option(
        '--group-output',
        'show hosts with identical stdout, stderr and exit once, with their names (as clubak)',
      )
      .option('--outdir <dir>', 'write NAME.stdout, NAME.stderr and NAME.exit per host into DIR')
      .option('--json', 'one JSON object per host (host, address, exit, signal, durationMs, stdout, stderr)'),
  );
  addTerminalOptions(
    command,
    'run it in a pseudo-terminal on the server (for vim, top, sudo; one server only)',
  )
    .addHelpText(
      'after',
      "\nExit status: the command's own; 128+N when it died of signal N; 124 when the server timed it out;\n" +
        '126 refused (allow-list); 127 no such program; 255 connection or authentication failure.\n' +
        'Fan-out exits 0 only if every server succeeded, else with the highest of their statuses.\n' +
        '\nExample: sockit exec 127.0.0.1:7070 -- uname -a',
    )
    .action(async (addressList: string, words: string[], options: ExecCliOptions) => {
      process.exitCode = await runExecCli(addressList, words, options);
    });
}

function envShortHint(value: string): never {
  throw new SockitError(
    'USAGE',
    `exec sets variables with --env ${value} (long form only: -e means --exec in listen and connect)`,
  );
}

async function runExecCli(first: string, words: string[], options: ExecCliOptions): Promise<number> {
  let request: ExecCliRequest;
  let hosts: FleetHost[] | undefined;
  try {
    // With an inventory there is no address operand: the first word is the program.
    const command = options.hosts !== undefined ? [first, ...words] : words;
    request = parseRequest(command, options);
    if (options.hosts !== undefined) {
      const { readHostsFile } = await import('../fleet.js');
      hosts = readHostsFile(options.hosts, options.group?.flatMap((group) => splitList(group)) ?? []);
    } else if ((options.group?.length ?? 0) > 0) {
      throw new SockitError('USAGE', '-g needs --hosts FILE');
    }
  } catch (error) {
    printError(error);
    return EXEC_EXIT.usage;
  }
  return runRemote(options.hosts !== undefined ? '' : first, request, options, false, hosts);
}

/**
 * Runs a parsed request on one server or fans it out; in a pseudo-terminal when -t/-tt (or,
 * with `terminalByDefault`, a local terminal) say so. Resolves with the CLI's exit status.
 */
export async function runRemote(
  addressList: string,
  request: ExecCliRequest,
  options: ExecCliOptions,
  terminalByDefault: boolean,
  hosts?: FleetHost[],
): Promise<number> {
  const targets = hosts ?? splitList(addressList).map((address) => ({ name: address, address }));
  const addresses = targets.map((target) => target.address);
  const terminal = chooseTerminal(options.tty, options.disableTty === true, terminalByDefault);
  const collecting = [options.groupOutput, options.outdir !== undefined, options.json].filter(Boolean).length;
  try {
    if (addresses.length === 0) throw new SockitError('USAGE', 'name at least one server address');
    if (collecting > 1)
      throw new SockitError('USAGE', '--group-output, --outdir and --json exclude each other');
    if (terminal.pty && addresses.length > 1) {
      throw new SockitError('USAGE', 'a terminal (-t) joins one server only; name one address or add -T');
    }
  } catch (error) {
    printError(error);
    return EXEC_EXIT.usage;
  }
  if (terminal.warning) printError(terminal.warning);
  if (terminal.pty) {
    return runInTerminal(addresses[0]!, request.command, remoteOptions(request, options), options);
  }
  let par: number;
  let hostTimeoutMs: number | undefined;
  try {
    par = options.par === undefined ? 32 : parsePositiveInteger(options.par, '--par');
    hostTimeoutMs =
      options.hostTimeout === undefined ? undefined : parseDuration(options.hostTimeout, '--host-timeout');
  } catch (error) {
    printError(error);
    return EXEC_EXIT.usage;
  }
  // Local stdin goes to every server at once; with fewer slots than servers it cannot.
  const forwardStdin = options.stdin && !isatty(0) && !stdinIsDevNull() && targets.length <= par;
  const session = new ExecSession(forwardStdin, targets.length, Math.min(par, targets.length));
  try {
    if (targets.length === 1 && hosts === undefined && collecting === 0) {
      const result = await session.run(addresses[0]!, request, options, undefined);
      return result.exitCode;
    }
    const hostOptions: ExecCliOptions =
      hostTimeoutMs === undefined
        ? options
        : {
            ...options,
            connectTimeout: Math.min(hostTimeoutMs, options.connectTimeout ?? 10_000),
          };
    const { Capture, printFleetSummary, printGroups, printJson, runLimited, writeOutdir } = await import(
      '../fleet.js'
    );
    const outcomes = await runLimited(targets, par, async (host): Promise<HostOutcome> => {
      const capture = collecting > 0 ? { stdout: new Capture(), stderr: new Capture() } : undefined;
      const signal = hostTimeoutMs === undefined ? undefined : AbortSignal.timeout(hostTimeoutMs);
      const result = await session.run(host.address, request, hostOptions, `${host.name}: `, {
        ...(capture ? { capture } : {}),
        ...(signal ? { signal } : {}),
        retryBusy: true,
      });
      return {
        host,
        exitCode: result.exitCode,
        outcome: result.outcome,
        ...(result.exit ? { exit: { code: result.exit.code, signal: result.exit.signal } } : {}),
        ...(result.exit ? {} : { error: errorField(result.outcome) }),
        durationMs: result.durationMs,
        stdout: capture?.stdout ?? new Capture(),
        stderr: capture?.stderr ?? new Capture(),
      };
    });
    if (options.json) printJson(outcomes);
    else if (options.groupOutput) printGroups(outcomes);
    else if (options.outdir !== undefined) await writeOutdir(options.outdir, outcomes);
    if (hosts === undefined && collecting === 0) {
      printSummary(outcomes.map((outcome, index) => ({ ...outcome, address: addresses[index]! })));
    } else printFleetSummary(outcomes);
    return outcomes.reduce((worst, result) => Math.max(worst, result.exitCode), 0);
  } finally {
    session.dispose();
  }
}

/** `CODE: message` back into its parts, for --json. */
function errorField(outcome: string): { code: string; message: string } {
  const colon = outcome.indexOf(': ');
  return colon > 0 && /^[A-Z_]+$/.test(outcome.slice(0, colon))
    ? { code: outcome.slice(0, colon), message: outcome.slice(colon + 2) }
    : { code: 'INTERNAL', message: outcome };
}

/** The spawn options a request and the CLI options give. */
function remoteOptions(request: ExecCliRequest, options: ExecCliOptions) {
  return {
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(request.env !== undefined ? { env: request.env } : {}),
    ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
  };
}

function parseRequest(words: string[], options: ExecCliOptions): ExecCliRequest {
  if (options.shell !== undefined && words.length > 0) {
    throw new SockitError('USAGE', 'give either --shell STRING or a command after --, not both');
  }
  if (options.shell === undefined && words.length === 0) {
    throw new SockitError('USAGE', 'no command: write it after --, e.g. sockit exec HOST -- ls -l');
  }
  const command: ExecCommand = options.shell !== undefined ? { shell: options.shell } : words;
  return { command, ...parseEnvAndTimeout(options) };
}

/** `--env K=V` (repeatable) and `--timeout MS`, shared with `sockit shell`. */
export function parseEnvAndTimeout(options: Pick<ExecCliOptions, 'env' | 'timeout'>) {
  let env: Record<string, string> | undefined;
  for (const pair of options.env) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new SockitError('USAGE', `--env takes NAME=VALUE, got "${pair}"`);
    env ??= {};
    env[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return { env, timeoutMs: options.timeout };
}

/**
 * The local side of one `sockit exec` run: the commands in flight, Ctrl-C forwarding, local
 * stdin shared by every target, and a closed local stdout (`| head`) stopping everything.
 */
class ExecSession {
  readonly #forwardStdin: boolean;
  readonly #running = new Set<RemoteProcess>();
  /** Targets that have not yet started (or failed): stdin is read only once all are attached. */
  #awaitingStdin: number;
  readonly #stdinSinks = new Set<Writable>();
  #interrupts = 0;
  #cancelled = false;

  readonly #onInterrupt = (): void => {
    this.#interrupts++;
    if (this.#interrupts > FORWARDED_INTERRUPTS || this.#running.size === 0) {
      this.#cancelAll();
      process.exit(EXEC_EXIT.signalBase + constants.signals.SIGINT);
    }
    for (const remote of this.#running) remote.kill('SIGINT');
  };

  readonly #onTerminate = (): void => {
    this.#cancelAll();
    process.exit(EXEC_EXIT.signalBase + constants.signals.SIGTERM);
  };

  readonly #onStdoutError = (): void => {
    // Our reader went away (`| head`): stop the remote commands as a broken pipe would.
    this.#cancelAll();
    process.exit(EXEC_EXIT.signalBase + constants.signals.SIGPIPE);
  };

  constructor(forwardStdin: boolean, targets: number, concurrent = targets) {
    this.#forwardStdin = forwardStdin;
    this.#awaitingStdin = targets;
    // Each running target pipes into both local streams: that many listeners are expected, not a leak.
    for (const stream of [process.stdout, process.stderr]) {
      stream.setMaxListeners(stream.getMaxListeners() + 2 * concurrent);
    }
    process.on('SIGINT', this.#onInterrupt);
    process.on('SIGTERM', this.#onTerminate);
    process.stdout.on('error', this.#onStdoutError);
  }

  /**
   * Runs the command on one server; never throws: failures become an exit code and a line on
   * stderr. With `retryBusy` (a fan-out), a server that answers BUSY is asked again (see
   * #spawnWhenFree). A failure's `durationMs` is the time spent on this server until it failed.
   */
  async run(
    address: string,
    request: ExecCliRequest,
    options: ExecCliOptions,
    prefix: string | undefined,
    extra: {
      capture?: { stdout: Writable; stderr: Writable };
      signal?: AbortSignal;
      retryBusy?: boolean;
    } = {},
  ): Promise<TargetResult & { exit?: ExecExit }> {
    const begun = performance.now();
    let stdinReported = false;
    const reportStdin = (sink: Writable | undefined): void => {
      if (stdinReported) return;
      stdinReported = true;
      this.#stdinReady(sink);
    };
    try {
      return await withClient(address, options, async (client) => {
        // A host refused BUSY gives up its share of stdin at once: stdin flows only once every
        // host is attached, and the hosts holding the slots may be waiting for it.
        const remote = await this.#spawnWhenFree(client, request, options, {
          ...extra,
          onBusy: () => reportStdin(undefined),
        });
        const outputs = [
          forward(remote.stdout, extra.capture?.stdout ?? process.stdout, extra.capture ? undefined : prefix),
          forward(remote.stderr, extra.capture?.stderr ?? process.stderr, extra.capture ? undefined : prefix),
        ];
        // Awaited only after a clean exit; on an error they must not surface as unhandled rejections.
        for (const output of outputs) output.catch(() => {});
        reportStdin(remote.stdin ?? undefined);
        try {
          const exit = await remote.exited;
          await Promise.all(outputs);
          return { ...describeExit(address, exit, prefix), exit };
        } finally {
          this.#running.delete(remote);
          if (remote.stdin) {
            this.#stdinSinks.delete(remote.stdin);
            process.stdin.unpipe(remote.stdin);
          }
        }
      });
    } catch (error) {
      reportStdin(undefined);
      const durationMs = Math.round(performance.now() - begun);
      if (extra.signal?.aborted) {
        return {
          address,
          exitCode: EXEC_EXIT.timedOut,
          outcome: `TIMEOUT: --host-timeout passed${isBusy(error) ? ' while the server was BUSY' : ''}; cancelled`,
          durationMs,
        };
      }
      // The collecting modes report failures in their own output and the summary.
      if (!extra.capture) printError(error, prefix);
      const code = error instanceof SockitError ? error.code : 'INTERNAL';
      return { address, exitCode: exitForError(code), outcome: describeError(error), durationMs };
    }
  }

  /**
   * Starts the command. With `retryBusy` (a fan-out) it resolves only once the command runs
   * (its `started`), so that stdin and output are joined to a command that runs, never to an
   * attempt refused before it started; and a BUSY answer (the server runs its
   * --exec-max-running commands: "try again later") is retried on the same connection, with
   * capped exponential backoff and full jitter so that hosts refused together do not come back
   * together, until the host's --host-timeout (its `signal`) or, without one, BUSY_RETRY_MS
   * have passed. Without it, the command is returned at once: a single `sockit exec` sends its
   * stdin with the request, not after the server's `started`.
   */
  async #spawnWhenFree(
    client: Client,
    request: ExecCliRequest,
    options: ExecCliOptions,
    extra: { signal?: AbortSignal; retryBusy?: boolean; onBusy?: () => void },
  ): Promise<RemoteProcess> {
    /** Whether this host still takes local stdin: not once it was refused BUSY (see run). */
    let takesStdin = this.#forwardStdin;
    const attempt = async (): Promise<RemoteProcess> => {
      // After a Ctrl-C nothing new starts (a host queued for --par or waiting on a BUSY server).
      if (this.#cancelled || this.#interrupts > 0) throw new SockitError('CANCELLED', 'interrupted');
      const remote = client.spawn(request.command, {
        stdin: takesStdin,
        ...remoteOptions(request, options),
        ...(extra.signal ? { signal: extra.signal } : {}),
      });
      this.#running.add(remote);
      if (!extra.retryBusy) return remote;
      try {
        await remote.started;
      } catch (error) {
        this.#running.delete(remote);
        throw error;
      }
      return remote;
    };
    if (!extra.retryBusy) return attempt();
    const { Backoff, retry } = await import('../../transport/backoff.js');
    const giveUpAt = extra.signal ? Number.POSITIVE_INFINITY : performance.now() + BUSY_RETRY_MS;
    let refused: unknown;
    try {
      return await retry(attempt, {
        backoff: new Backoff(BUSY_BACKOFF),
        retryable: (error) => isBusy(error) && performance.now() < giveUpAt,
        onRetry: (info) => {
          refused = info.error;
          if (takesStdin) {
            takesStdin = false;
            extra.onBusy?.();
          }
        },
        signal: extra.signal,
      });
    } catch (error) {
      // --host-timeout ended a wait between attempts: the reason is the server's BUSY.
      throw extra.signal?.aborted && refused !== undefined ? refused : error;
    }
  }

  /** Releases the process: signal handlers off, local stdin closed so nothing holds the loop. */
  dispose(): void {
    process.off('SIGINT', this.#onInterrupt);
    process.off('SIGTERM', this.#onTerminate);
    process.stdout.off('error', this.#onStdoutError);
    if (this.#forwardStdin) process.stdin.destroy();
  }

  /**
   * A target is ready for stdin (or will never be). Reading starts when every target has said
   * so: a fast first server must not consume input that a slower one never sees.
   */
  #stdinReady(sink: Writable | undefined): void {
    if (sink) this.#stdinSinks.add(sink);
    if (--this.#awaitingStdin > 0 || !this.#forwardStdin) return;
    for (const ready of this.#stdinSinks) process.stdin.pipe(ready);
  }

  #cancelAll(): void {
    this.#cancelled = true;
    for (const remote of this.#running) remote.cancel();
  }
}

/** Copies a remote stream to a local one with backpressure; with a prefix, line by line. */
function forward(source: Readable, target: Writable, prefix?: string): Promise<void> {
  const stream = prefix === undefined ? source : source.pipe(new LinePrefixer(prefix));
  stream.pipe(target, { end: false });
  return finished(stream);
}

/** Prefixes every line with its server; a last line without newline gets one. */
class LinePrefixer extends Transform {
  readonly #prefix: Buffer;
  #partial: Buffer[] = [];

  constructor(prefix: string) {
    super();
    this.#prefix = Buffer.from(prefix);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const out: Buffer[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      out.push(this.#prefix, ...this.#partial, chunk.subarray(start, newline + 1));
      this.#partial = [];
      start = newline + 1;
    }
    if (start < chunk.length) this.#partial.push(chunk.subarray(start));
    // Whole lines only, in one chunk: lines of different servers never mix mid-line.
    callback(null, out.length > 0 ? Buffer.concat(out) : undefined);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#partial.length === 0) callback();
    else callback(null, Buffer.concat([this.#prefix, ...this.#partial, Buffer.from('\n')]));
  }
}

function printSummary(results: readonly TargetResult[]): void {
  const failed = results.filter((result) => result.exitCode !== 0).length;
  const width = Math.max(...results.map((result) => result.address.length));
  const lines = [
    failed === 0
      ? `sockit exec: all ${results.length} servers succeeded`
      : `sockit exec: ${failed} of ${results.length} servers failed`,
    ...results.map(
      (result) =>
        `  ${result.address.padEnd(width)}  ${result.exitCode === 0 ? 'ok  ' : 'FAIL'}  ${result.outcome}` +
        `  (${result.durationMs} ms)`,
    ),
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}
