import { type ErrorCode, errnoMeaning, SockitError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { HeaderOfType } from '../../protocol/catalogue.js';
import { CHANNEL_ATTACH_MS } from '../../protocol/exec.js';
import type { Frame } from '../../protocol/frame.js';
import type { ServerRequest } from '../../server/request.js';
import type { ChannelOffer, DataChannel } from '../../server/service.js';
import { addDeadline, type Deadline, removeDeadline } from './deadlines.js';
import type { ExecPlan } from './policy.js';
import { signalGroup, trackGroup, untrackGroup } from './process-group.js';
import {
  type CommandOutput,
  type CommandProcess,
  type Spawner,
  startProcess,
  type TerminalRelay,
} from './spawner.js';

/** After a kill, how long a process outside the group may hold the pipes before they are closed. */
const KILLED_PIPE_GRACE_MS = 1000;

/** How a command ended, for the `exit` frame and the audit log. */
export interface CommandOutcome {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  truncated: boolean;
  /** Set when the request ended with an error frame instead of `exit` (a spawn failure). */
  error: ErrorCode | undefined;
  /** Why the command was killed by the server: timeout, cancel, disconnect, output limit. */
  killedBy: string | undefined;
  /** Its terminal's bytes went over a data channel. */
  channel: boolean;
  durationMs: number;
  stdoutBytes: number;
  stderrBytes: number;
  stdinBytes: number;
}

/**
 * How long a command's `started` frame may wait to leave together with what follows it: its
 * first output, or its exit. Most commands a client runs in a loop end well within it; their
 * `started`, output and `exit` then leave in one write, which the client reads in one wake-up,
 * where an early `started` costs a write, a read and a wake-up of its own on each side. A
 * command still running with no output when it passes gets its `started` at that moment. The
 * holds share the one timer of the commands' deadlines (deadlines.ts).
 */
const STARTED_HOLD_MS = 10;

/**
 * One running command, joined to its request: stdout/stderr become frames as they are produced
 * (the child's pipes pause while the socket needs to drain), `stdin` frames go to the child's
 * stdin (the connection pauses while that pipe is full), and every way of ending early — timeout,
 * cancel, disconnect, too much output — kills the whole process group.
 */
export class RunningCommand {
  /** Settles once the request is over: `exit` sent, or an error frame for a spawn failure. */
  readonly done: Promise<CommandOutcome>;
  readonly #request: ServerRequest;
  readonly #maxOutputBytes: number;
  readonly #spawner: Spawner;
  readonly #log: Logger;
  #resolveDone!: (outcome: CommandOutcome) => void;
  #phase: 'pending' | 'running' | 'gone' = 'pending';
  #child: CommandProcess | undefined;
  #pid: number | undefined;
  #startedAt = 0;
  #leaderExited = false;
  #deadline: Deadline | undefined;
  #closeGrace: NodeJS.Timeout | undefined;
  #outputPaused = false;
  #timedOut = false;
  #truncated = false;
  #killedBy: string | undefined;
  #stdoutBytes = 0;
  #stderrBytes = 0;
  #stdinBytes = 0;
  /** The `started` frame while it is held (STARTED_HOLD_MS) for the output or exit that follows it. */
  #startedFrame: { type: 'started'; pid: number; timeoutMs?: number } | undefined;
  #startedHold: Deadline | undefined;
  /** Sends the held `started` now, before what follows it; nothing if it already left. */
  readonly #sendStarted = (): void => {
    const frame = this.#startedFrame;
    if (frame === undefined) return;
    this.#startedFrame = undefined;
    removeDeadline(this.#startedHold);
    this.#request.send(frame);
  };
  /**
   * Frames that arrive before the process exists wait for this (and hold the connection). Made
   * only when one does: most requests have no follow-up before their command starts.
   */
  #ready: Promise<void> | undefined;
  #resolveReady: (() => void) | undefined;
  /** A data channel offered and not yet attached or declined: the output waits for it. */
  #channelOffer: ChannelOffer | undefined;
  /**
   * The attached data channel, what the addon moves over it, and how it stands: `open`, its
   * output `ended` (the client reads end of file), or `cut` (failed, destroyed).
   */
  #channel: { channel: DataChannel; relay: TerminalRelay; state: 'open' | 'ended' | 'cut' } | undefined;

  constructor(request: ServerRequest, settings: { maxOutputBytes: number; spawner: Spawner }, log: Logger) {
    this.#request = request;
    this.#maxOutputBytes = settings.maxOutputBytes || Number.POSITIVE_INFINITY;
    this.#spawner = settings.spawner;
    this.#log = log;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  /** Follow-up frames of the request, already checked against the catalogue: `stdin`, `stdin-end`, `signal`, `resize`. */
  onFrame(frame: Frame): void | Promise<void> {
    if (this.#phase === 'pending') {
      // Still checking the policy: keep the frame (and the connection) until the child exists.
      this.#ready ??= new Promise((resolve) => {
        this.#resolveReady = resolve;
      });
      return this.#ready.then(() => this.onFrame(frame));
    }
    if (this.#phase === 'gone' || this.#child === undefined) return; // refused or failed: dropped
    const { header } = frame;
    switch (header.type) {
      case 'stdin':
        return this.#writeStdin(frame.body);
      case 'stdin-end':
        // A terminal has no end-of-file to close (the user types ^D): only pipes are ended.
        if (this.#child.resize === undefined) this.#child.stdin?.end();
        return;
      case 'resize': {
        // Not a terminal: nothing to size. The catalogue checked rows and cols.
        const { rows, cols } = header as HeaderOfType<'resize'>;
        this.#child.resize?.(rows, cols);
        return;
      }
      case 'channel-decline':
        this.#channelOffer?.withdraw(); // the output comes in band from now on
        return;
      case 'signal':
        // Like Ctrl-C in a terminal, the signal reaches the whole foreground group.
        if (!this.#leaderExited) signalGroup(this.#pid!, (header as HeaderOfType<'signal'>).signal);
        return;
      default:
        // The connection delivers only the follow-ups an exec request declares.
        this.#failRunning('BAD_REQUEST', `an exec request does not take "${header.type}" frames`);
    }
  }

  /** The policy refused the request or it was cancelled first: release waiting frames. */
  abandon(): void {
    this.#phase = 'gone';
    this.#resolveReady?.();
  }

  /**
   * Starts the process; the outcome arrives through `done`. `channel`: the client asked to
   * carry a terminal's bytes over a data channel, offered where the connection can have one.
   */
  start(plan: ExecPlan, channel = false): void {
    const { timeoutMs } = plan;
    let child: CommandProcess;
    try {
      child = startProcess(plan, this.#spawner);
    } catch (error) {
      this.#spawnFailed(error as NodeJS.ErrnoException, plan);
      return;
    }
    this.#child = child;
    this.#phase = 'running';
    this.#startedAt = performance.now();
    if (child.pid === undefined) {
      // The failure (ENOENT, EACCES) arrives as an 'error' event on the next tick.
      child.once('error', (error: NodeJS.ErrnoException) => this.#spawnFailed(error, plan));
      return;
    }
    this.#pid = child.pid;
    trackGroup(child.pid);
    child.on('error', (error) =>
      this.#log.warn('exec: child process error', { pid: this.#pid, error: String(error) }),
    );
    child.stdin?.on('error', () => {}); // EPIPE: the command stopped reading; what we had is dropped
    this.#forward(child.stdout!, 'stdout');
    if (child.stderr) this.#forward(child.stderr, 'stderr');
    // Both are emitted once (by either spawner): plain listeners, without once()'s wrappers,
    // which cost a closure each to add and a search of the listener list to take off.
    child.on('exit', () => this.#onLeaderExit());
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => this.#onClose(code, signal));
    const request = this.#request;
    if (request.aborted) this.kill('cancel');
    else request.onAbort((reason) => this.kill(abortCause(reason)));
    if (timeoutMs > 0) {
      this.#deadline = addDeadline(timeoutMs, () => {
        this.#timedOut = true;
        this.kill('timeout');
      });
    }
    this.#startedFrame =
      timeoutMs > 0 ? { type: 'started', pid: child.pid, timeoutMs } : { type: 'started', pid: child.pid };
    this.#startedHold = addDeadline(STARTED_HOLD_MS, this.#sendStarted);
    if (channel && child.relayOver !== undefined) this.#offerChannel(child);
    this.#resolveReady?.();
  }

  /**
   * Offers the terminal's data channel (docs/exec.md "Terminals"): `channel` goes out before
   * `started`, and the output waits unread in the terminal until the client attaches, declines
   * or lets CHANNEL_ATTACH_MS pass, so no byte can come both ways or out of order.
   */
  #offerChannel(child: CommandProcess): void {
    const offer = this.#request.connection.offerChannel(CHANNEL_ATTACH_MS, 'raw');
    if (offer === undefined) return;
    this.#channelOffer = offer;
    child.stdout!.pause();
    this.#request.send({ type: 'channel', key: offer.key });
    void offer.attached.then((channel) => this.#joinChannel(child, channel));
  }

  #joinChannel(child: CommandProcess, channel: DataChannel | undefined): void {
    this.#channelOffer = undefined;
    if (this.#request.finished) {
      channel?.destroy(); // joined too late: the command is over
      return;
    }
    // A leader that exited while the offer was pending left its close grace to this moment.
    if (this.#leaderExited) this.#startCloseGrace();
    if (channel === undefined) {
      if (!this.#outputPaused) child.stdout!.resume(); // declined or expired: in band after all
      return;
    }
    try {
      // The output cap holds over the channel too: the copy stops at it. Nothing went in band
      // before (the output waited for this), so the whole cap is left.
      const relay = child.relayOver!(
        channel.fd,
        Number.isFinite(this.#maxOutputBytes) ? this.#maxOutputBytes : 0,
        (error) => this.#channelOutputEnded(error),
        (error) => this.#channelFailed(error),
      );
      this.#channel = { channel, relay, state: 'open' };
    } catch (error) {
      // The client copies its terminal into the channel now: a session without it is lost.
      this.#log.warn('exec: data channel not joined', { pid: this.#pid, error: String(error) });
      channel.destroy();
      this.kill('channel lost');
    }
  }

  /** The terminal's output is over (or the channel failed): the client reads end of file. */
  #channelOutputEnded(error: NodeJS.ErrnoException | undefined): void {
    const joined = this.#channel!;
    if (joined.state === 'cut') return; // the kill ends the output
    if (error === undefined || error.code === 'EFBIG') {
      joined.state = 'ended';
      joined.channel.end();
      if (error !== undefined) {
        this.#truncated = true;
        this.kill('output limit');
      }
      return;
    }
    this.#channelFailed(error);
  }

  /** The channel broke (reset, timed out) either way: the client is cut off, so is its command. */
  #channelFailed(error: NodeJS.ErrnoException): void {
    const joined = this.#channel!;
    if (joined.state === 'cut') return;
    joined.state = 'cut';
    this.#log.debug('exec: data channel failed', { pid: this.#pid, error: String(error) });
    joined.channel.destroy();
    this.kill('channel lost');
  }

  /** The request ends: the channel's copies have stopped (the child closed); let its socket go. */
  #closeChannel(): void {
    this.#channelOffer?.withdraw();
    const channel = this.#channel;
    if (channel === undefined) return;
    this.#stdoutBytes += channel.relay.outputBytes;
    this.#stdinBytes += channel.relay.inputBytes;
    // After its output's end the client closes its side (read again to see it, bounded by the
    // close grace); a channel cut short is closed at once.
    if (channel.state === 'ended') channel.channel.finish();
    else channel.channel.destroy();
  }

  /** Kills the whole process group now. */
  kill(reason: string): void {
    if (this.#pid === undefined) return;
    this.#killedBy ??= reason;
    if (!this.#leaderExited) {
      signalGroup(this.#pid, 'SIGKILL');
      return;
    }
    // The leader is gone but something outside its group (setsid) still holds the pipes open:
    // stop reading so the request can end.
    this.#child?.stdout?.destroy();
    this.#child?.stderr?.destroy();
  }

  #forward(stream: CommandOutput, type: 'stdout' | 'stderr'): void {
    stream.on('data', (chunk: Buffer) => this.#output(type, chunk));
    stream.on('error', (error) =>
      this.#log.debug('exec: pipe error', { pid: this.#pid, type, error: String(error) }),
    );
  }

  #output(type: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.#truncated) return; // being killed: drain the pipe, send nothing more
    const used = this.#stdoutBytes + this.#stderrBytes;
    let body = chunk;
    if (used + chunk.length > this.#maxOutputBytes) {
      body = chunk.subarray(0, this.#maxOutputBytes - used);
      this.#truncated = true;
    }
    if (type === 'stdout') this.#stdoutBytes += body.length;
    else this.#stderrBytes += body.length;
    this.#sendStarted();
    if (body.length > 0 && !this.#request.send({ type }, body)) this.#pauseOutput();
    if (this.#truncated) this.kill('output limit');
  }

  /** The socket is full: stop reading the child's pipes (the child then blocks on write) until it drains. */
  #pauseOutput(): void {
    if (this.#outputPaused || this.#request.finished) return;
    this.#outputPaused = true;
    const child = this.#child!;
    child.stdout!.pause();
    child.stderr?.pause();
    const resume = (): void => {
      this.#outputPaused = false;
      child.stdout!.resume();
      child.stderr?.resume();
    };
    // A closed connection rejects: the abort kills the command, and the pipes must drain to EOF.
    this.#request.drained().then(resume, resume);
  }

  #writeStdin(body: Buffer): void | Promise<void> {
    const stdin = this.#child?.stdin;
    // Not asked for, already ended, or the command closed its stdin: the bytes are dropped.
    if (!stdin || !stdin.writable) return;
    this.#stdinBytes += body.length;
    if (stdin.write(body)) return;
    return new Promise((resolve) => {
      const done = (): void => {
        stdin.off('drain', done);
        stdin.off('close', done);
        resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  }

  #onLeaderExit(): void {
    this.#leaderExited = true;
    // Whatever the command left behind in its group dies with it: nothing outlives a command.
    // The addon has done so already, before it reaped the leader.
    if (!this.#child?.groupKilledAtExit) signalGroup(this.#pid!, 'SIGKILL');
    untrackGroup(this.#pid!);
    // An offered channel still pending holds the output back, unread: the grace begins once the
    // offer is settled, or closing the terminal would throw that output away.
    if (this.#channelOffer === undefined) this.#startCloseGrace();
  }

  /** After the leader's exit: how long what it left behind may keep the request open. */
  #startCloseGrace(): void {
    if (this.#killedBy !== undefined) {
      // Killed: read what is left in the pipes, but a process that escaped the group (setsid)
      // and still holds them open must not keep the request alive.
      this.#closeGrace = setTimeout(() => this.kill(this.#killedBy!), KILLED_PIPE_GRACE_MS);
      this.#closeGrace.unref();
    } else if (this.#child?.resize !== undefined) {
      // A terminal session ends with its leader, as a login session does: a background job of
      // the shell (another process group) holding the terminal open gets the same grace, then
      // the master is closed, which hangs the terminal up (SIGHUP) for whatever is left.
      this.#closeGrace = setTimeout(() => this.#child?.stdout?.destroy(), KILLED_PIPE_GRACE_MS);
      this.#closeGrace.unref();
    }
  }

  #onClose(code: number | null, signal: NodeJS.Signals | null): void {
    removeDeadline(this.#deadline);
    this.#closeChannel();
    if (this.#closeGrace !== undefined) clearTimeout(this.#closeGrace);
    const durationMs = Math.round(performance.now() - this.#startedAt);
    this.#sendStarted(); // in the same write as the exit, for a short command
    this.#request.outcome = { exit: { code, signal } };
    this.#request.send({
      type: 'exit',
      code,
      signal,
      timedOut: this.#timedOut,
      truncated: this.#truncated,
      durationMs,
    });
    this.#request.finish();
    this.#resolveDone(this.#outcome({ code, signal, durationMs }));
  }

  /** An error frame for this id while the command runs: it must not keep running unseen. */
  #failRunning(code: ErrorCode, message: string): void {
    this.#sendStarted();
    this.#request.fail(code, message);
    this.kill('bad request');
  }

  #spawnFailed(error: NodeJS.ErrnoException, plan: ExecPlan): void {
    const failure = spawnFailure(error, plan, this.#log);
    this.#request.fail(failure.code, failure.message);
    this.#phase = 'gone';
    this.#resolveReady?.();
    this.#resolveDone(this.#outcome({ code: null, signal: null, durationMs: 0, error: failure.code }));
  }

  #outcome(end: {
    code: number | null;
    signal: NodeJS.Signals | null;
    durationMs: number;
    error?: ErrorCode;
  }) {
    return {
      pid: this.#pid,
      code: end.code,
      signal: end.signal,
      timedOut: this.#timedOut,
      truncated: this.#truncated,
      error: end.error,
      killedBy: this.#killedBy,
      channel: this.#channel !== undefined,
      durationMs: end.durationMs,
      stdoutBytes: this.#stdoutBytes,
      stderrBytes: this.#stderrBytes,
      stdinBytes: this.#stdinBytes,
    };
  }
}

function abortCause(reason: unknown): string {
  if (reason instanceof SockitError) return reason.code === 'CLOSED' ? 'disconnect' : reason.message;
  return 'cancel';
}

/** Turns a spawn error into the error frame the client sees. */
function spawnFailure(
  error: NodeJS.ErrnoException,
  plan: ExecPlan,
  log: Logger,
): { code: ErrorCode; message: string } {
  const program = plan.shell !== undefined ? plan.file : plan.argv![0]!;
  // The code comes from the one errno table; EISDIR (a directory named as the program) is
  // a program that cannot be executed, as EACCES is.
  switch (error.code === 'EISDIR' ? 'FORBIDDEN' : errnoMeaning(error)?.code) {
    case 'NOT_FOUND':
      return {
        code: 'NOT_FOUND',
        message: `program "${program}" not found on the server (not on its PATH, or no such file)`,
      };
    case 'FORBIDDEN':
      return { code: 'FORBIDDEN', message: `cannot execute "${program}" on the server: permission denied` };
    case 'UNAVAILABLE':
      return {
        code: 'UNAVAILABLE',
        message: `the server cannot start "${program}" right now (${error.code}: ${errnoMeaning(error)!.reason}); try again later`,
      };
    default:
      if (typeof error.code === 'string' && error.code.startsWith('ERR_INVALID_ARG')) {
        return { code: 'BAD_REQUEST', message: `cannot run "${program}": ${error.message}` };
      }
      // Thrown from an event listener this would crash the server: log it, answer INTERNAL.
      log.error('exec: spawn failed', { program, error: error.stack ?? String(error) });
      return { code: 'INTERNAL', message: 'internal server error (details are in the server log)' };
  }
}
