import { Readable, Writable } from 'node:stream';
import { invalidOption, SockitError } from '../errors.js';
import type { HeaderOfType } from '../protocol/catalogue.js';
import { EXEC_SIGNALS, type ExecSignal, isExecSignal } from '../protocol/exec.js';
import type { Frame } from '../protocol/frame.js';
import type { JoinedChannel } from './channel.js';
import type { Client } from './client.js';
import type { ClientRequest } from './request.js';

export type { ExecSignal };

/**
 * A command: an argv run without a shell, a shell string (only where the server allows shells),
 * or `{ login: true }`: the server's own shell (`sockit shell`; only where it allows terminals).
 */
export type ExecCommand = readonly string[] | { readonly shell: string } | { readonly login: true };

/** A pseudo-terminal for the command: the terminal type and window size it starts with. */
export interface RemotePty {
  /** The TERM the command sees, e.g. `xterm-256color`. */
  term: string;
  rows: number;
  cols: number;
}

/** Signals a client may forward to a running command. */

/** Options of both exec forms. */
export interface RemoteExecOptions {
  /** Working directory on the server (relative paths resolve against the server's default). */
  cwd?: string;
  /** Variables added to the server's environment for this command (the server may refuse some). */
  env?: Readonly<Record<string, string>>;
  /** Kill the command after this long; the server caps it at its own maximum. Default: that maximum. */
  timeoutMs?: number;
  /** Aborting kills the remote command (a `cancel`); the result then rejects. */
  signal?: AbortSignal;
}

/** Options of the streaming form. */
export interface SpawnRemoteOptions extends RemoteExecOptions {
  /** Give the command a stdin to write to (default true); false: it reads /dev/null. */
  stdin?: boolean;
  /**
   * Run it in a pseudo-terminal on the server (`--allow-pty` there): stdin is the terminal's
   * input, stdout everything it shows (stderr stays empty); `resize()` follows window changes.
   */
  pty?: RemotePty;
  /**
   * With `pty`: ask for a data channel (docs/exec.md "Terminals"). Where the server offers one,
   * the terminal's bytes travel raw on a second connection that `channel` resolves with, and
   * `stdin`/`stdout` carry nothing; elsewhere (TLS, an older server) they stay in band. Only
   * asked for where the client can join one (`client.channelKind` is `raw`). The joined socket is
   * the caller's: destroy it once the command has exited and its output has ended.
   */
  channel?: boolean;
}

/** Options of the collecting form. */
export interface ExecOptions extends RemoteExecOptions {
  /** Bytes for the command's stdin; without it, the command reads /dev/null. */
  input?: string | Uint8Array | Readable | AsyncIterable<Uint8Array | string>;
  /** Most stdout (and, separately, stderr) bytes to collect; past it the command is killed and the call fails TOO_LARGE. Default 64 MiB. */
  maxBuffer?: number;
}

/** How a remote command ended, as the server's `exit` frame says. */
export interface ExecExit {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The server killed it at its timeout. */
  timedOut: boolean;
  /** The server killed it because its output passed the server's limit. */
  truncated: boolean;
  durationMs: number;
}

/** The collected result of `client.exec()`. */
export interface ExecResult extends ExecExit {
  pid: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
}

const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;
/** stdin is sent in frames of at most this many bytes, well under any server's body limit. */
const STDIN_FRAME_BYTES = 256 * 1024;
const STREAM_HIGH_WATER = 256 * 1024;
/**
 * A readable fed by frames: when its buffer is full, the frame handler gets a promise that the
 * connection waits on, so a slow reader slows the server down instead of filling memory.
 */
class FrameReadable extends Readable {
  #waiting: (() => void) | undefined;
  #ended = false;

  constructor() {
    super({ highWaterMark: STREAM_HIGH_WATER });
    this.once('close', () => this.#wake());
  }

  override _read(): void {
    this.#wake();
  }

  deliver(chunk: Buffer): void | Promise<void> {
    if (this.#ended || this.destroyed) return;
    if (this.push(chunk)) return;
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  endOfData(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.destroyed) this.push(null);
    this.#wake();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }
}

/**
 * A command running on a server, like a `ChildProcess`: write to `stdin`, read `stdout` and
 * `stderr` (with backpressure both ways), `kill()` to forward a signal, await `exited`.
 * Read both output streams (or destroy them): unread output eventually pauses the connection.
 */
export class RemoteProcess {
  /** The command's stdin; `end()` it to send end-of-file. Null when started with `stdin: false`. */
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves with the server-side pid once the command runs; rejects if it never starts. */
  readonly started: Promise<number>;
  /** Resolves when the command ended; rejects with the server's error (FORBIDDEN, NOT_FOUND, BUSY…). */
  readonly exited: Promise<ExecExit>;
  /**
   * The joined data channel (the `channel` option), or undefined: its bytes come in band (none
   * was asked for or offered, or joining it failed and was declined). Settles with `started`
   * when none was offered, else once the offer is joined or declined (the output waits for it).
   */
  readonly channel: Promise<JoinedChannel | undefined>;
  readonly #request: ClientRequest;
  readonly #stdout = new FrameReadable();
  readonly #stderr = new FrameReadable();
  #pid: number | undefined;

  constructor(client: Client, command: ExecCommand, options: SpawnRemoteOptions = {}) {
    const wantsStdin = options.pty !== undefined || (options.stdin ?? true);
    const wantsChannel =
      options.channel === true && options.pty !== undefined && client.channelKind === 'raw';
    const header = execHeader(command, options, wantsStdin);
    if (wantsChannel) header.channel = true;
    this.#request = client.open(header, undefined, requestOptions(options));
    this.stdout = this.#stdout;
    this.stderr = this.#stderr;
    this.stdin = wantsStdin ? this.#stdinWritable() : null;
    let startedResolve!: (pid: number) => void;
    let startedReject!: (error: Error) => void;
    this.started = new Promise((resolve, reject) => {
      startedResolve = resolve;
      startedReject = reject;
    });
    let channelResolve!: (channel: JoinedChannel | undefined) => void;
    this.channel = new Promise((resolve) => {
      channelResolve = resolve;
    });
    /** Whether a `channel` offer is being joined: `started` then does not settle `channel`. */
    let joining = false;
    this.#request.onFrame = (frame: Frame) => {
      switch (frame.header.type) {
        case 'channel':
          if (!wantsChannel || joining) return;
          joining = true;
          client.joinChannel(String(frame.header.key)).then(
            (joined) => {
              // Joined after the request ended (cancelled, failed): nobody would own the socket.
              if (this.#request.settled) {
                joined.socket.destroy();
                channelResolve(undefined);
              } else channelResolve(joined);
            },
            () => {
              // Joining failed (a proxy allowing one connection, a server at its limit): in band then.
              if (!this.#request.settled) this.#request.send({ type: 'channel-decline' });
              channelResolve(undefined);
            },
          );
          return;
        case 'started':
          this.#pid = Number(frame.header.pid);
          startedResolve(this.#pid);
          if (!joining) channelResolve(undefined);
          return;
        case 'stdout':
          return this.#stdout.deliver(frame.body);
        case 'stderr':
          return this.#stderr.deliver(frame.body);
        default:
          return; // unknown frames of a newer server are ignored, as the protocol says
      }
    };
    this.exited = this.#request.done.then(
      (frame) => {
        if (!joining) channelResolve(undefined);
        this.#endStreams();
        if (this.#pid === undefined)
          startedReject(new SockitError('INTERNAL', 'the command ended without starting'));
        return exitOf(frame.header as HeaderOfType<'exit'>);
      },
      (error: Error) => {
        if (!joining) channelResolve(undefined);
        this.#endStreams();
        startedReject(error);
        throw error;
      },
    );
    // Callers that only read the streams must not see unhandled rejections.
    this.started.catch(() => {});
    this.exited.catch(() => {});
  }

  /** The server-side pid, once started. */
  get pid(): number | undefined {
    return this.#pid;
  }

  /** Forwards a signal to the command's process group. False if the command has already ended. */
  kill(signal: ExecSignal = 'SIGTERM'): boolean {
    if (!isExecSignal(signal))
      throw invalidOption(`signal must be one of ${EXEC_SIGNALS.join(', ')}, got ${signal}`);
    if (this.#request.settled) return false;
    this.#request.send({ type: 'signal', signal });
    return true;
  }

  /** Tells the server the terminal's new size (SIGWINCH there); ignored for a command without a pty. */
  resize(rows: number, cols: number): void {
    if (this.#request.settled) return;
    this.#request.send({ type: 'resize', rows, cols });
  }

  /** Stops the command at once (the server kills its process group); `exited` rejects. */
  cancel(): void {
    this.#request.cancel();
  }

  #endStreams(): void {
    this.#stdout.endOfData();
    this.#stderr.endOfData();
  }

  #stdinWritable(): Writable {
    const request = this.#request;
    return new Writable({
      highWaterMark: STDIN_FRAME_BYTES,
      write: (chunk: Buffer, _encoding, callback) => sendStdin(request, chunk, () => callback()),
      final: (callback) => {
        if (!request.settled) request.send({ type: 'stdin-end' });
        callback();
      },
    });
  }
}

/** Sends `chunk` as stdin frames of at most STDIN_FRAME_BYTES with backpressure; `done` once it is out or dropped. */
function sendStdin(request: ClientRequest, chunk: Buffer, done: () => void): void {
  let offset = 0;
  // Synchronous while the socket takes the frames: a keystroke or a line goes out and is done in
  // the same call, with no promise between the key and its frame. A closed connection or an
  // ended command drops the bytes, like a closed pipe: never an error for the stream.
  const next = (): void => {
    while (offset < chunk.length && !request.settled) {
      const piece = chunk.subarray(offset, offset + STDIN_FRAME_BYTES);
      offset += STDIN_FRAME_BYTES;
      if (!request.send({ type: 'stdin' }, piece)) {
        request.drained().then(next, done);
        return;
      }
    }
    done();
  };
  next();
}

/** Starts a command on the server and returns it with its streams (`client.spawn`). */
export function spawnRemote(
  client: Client,
  command: ExecCommand,
  options: SpawnRemoteOptions = {},
): RemoteProcess {
  return new RemoteProcess(client, command, options);
}

/**
 * Runs a command on the server and collects its output (`client.exec`). Resolves whatever the
 * exit code; rejects with the server's error code when the command could not run. Frames are
 * collected directly, without streams: this is the form a loop of short commands uses, so it
 * is one `then` on the request rather than an async function, and the output of a command
 * that wrote nothing costs no concatenation.
 */
export function runExec(
  client: Client,
  command: ExecCommand,
  options: ExecOptions = {},
): Promise<ExecResult> {
  const { input } = options;
  // execHeader and requestOptions read only the fields they know: no copy without input/maxBuffer.
  const request = client.open(
    execHeader(command, options, input !== undefined),
    undefined,
    requestOptions(options),
  );
  const output = new CollectedOutput(request, options.maxBuffer ?? DEFAULT_MAX_BUFFER);
  request.onFrame = output.onFrame;
  if (input !== undefined) void feedRequest(request, input);
  return request.done.then(output.result, output.failure);
}

const EMPTY_OUTPUT = Buffer.alloc(0);

/** What `runExec` collects from a request's frames: the pid and each stream's chunks, up to maxBuffer. */
class CollectedOutput {
  readonly #request: ClientRequest;
  readonly #maxBuffer: number;
  #pid: number | undefined;
  readonly #stdout: StreamChunks = { chunks: [], bytes: 0 };
  readonly #stderr: StreamChunks = { chunks: [], bytes: 0 };
  /** The stream that passed maxBuffer (the command was cancelled for it). */
  #overflow: 'stdout' | 'stderr' | undefined;

  constructor(request: ClientRequest, maxBuffer: number) {
    this.#request = request;
    this.#maxBuffer = maxBuffer;
  }

  readonly onFrame = (frame: Frame): void => {
    const type = frame.header.type;
    if (type === 'started') {
      this.#pid = Number(frame.header.pid);
      return;
    }
    if (type !== 'stdout' && type !== 'stderr') return;
    const stream = type === 'stdout' ? this.#stdout : this.#stderr;
    stream.bytes += frame.body.length;
    // Socket chunks are fresh allocations, so keeping the body view is safe.
    if (stream.bytes <= this.#maxBuffer) stream.chunks.push(frame.body);
    else if (this.#overflow === undefined) {
      this.#overflow = type;
      this.#request.cancel();
    }
  };

  readonly result = (frame: Frame): ExecResult => {
    // The exit fields, then the collected ones added to the same object (no spread into a copy).
    const result = exitOf(frame.header as HeaderOfType<'exit'>) as ExecResult;
    result.pid = this.#pid;
    result.stdout = joined(this.#stdout.chunks);
    result.stderr = joined(this.#stderr.chunks);
    return result;
  };

  readonly failure = (error: unknown): never => {
    if (this.#overflow !== undefined) {
      throw new SockitError(
        'TOO_LARGE',
        `${this.#overflow} passed maxBuffer (${this.#maxBuffer} bytes); the command was killed`,
      );
    }
    throw error;
  };
}

/** One stream's collected chunks and the bytes it sent (which may be more than were kept). */
interface StreamChunks {
  readonly chunks: Buffer[];
  bytes: number;
}

/** The chunks as one buffer, copied only when there are several. */
function joined(chunks: Buffer[]): Buffer {
  if (chunks.length === 0) return EMPTY_OUTPUT;
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** Sends `input` as stdin frames with backpressure, then `stdin-end`; stops if the command ends. */
async function feedRequest(request: ClientRequest, input: NonNullable<ExecOptions['input']>): Promise<void> {
  try {
    if (typeof input === 'string' || input instanceof Uint8Array) {
      await new Promise<void>((resolve) => sendStdin(request, toBuffer(input), resolve));
      return;
    }
    for await (const chunk of input as AsyncIterable<Uint8Array | string>) {
      if (request.settled) break;
      await new Promise<void>((resolve) => sendStdin(request, toBuffer(chunk), resolve));
    }
  } catch {
    // The command or the connection is gone, or the input failed: end stdin; the result reports.
  } finally {
    if (!request.settled) request.send({ type: 'stdin-end' });
  }
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Request options shared by both forms (`exit` ends it, as the catalogue says); the server owns the deadline. */
function requestOptions(options: RemoteExecOptions) {
  return {
    // The server enforces timeoutMs; the client waits as long as the command runs.
    timeoutMs: 0,
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

function execHeader(command: ExecCommand, options: SpawnRemoteOptions, stdin: boolean) {
  const header: { type: string; [field: string]: unknown } = { type: 'exec' };
  if (Array.isArray(command)) {
    if (command.length === 0 || !command.every((arg) => typeof arg === 'string')) {
      throw invalidOption('exec argv must be a non-empty list of strings');
    }
    header.argv = command;
  } else if ((command as { login?: unknown }).login === true) {
    header.login = true;
  } else {
    const shell = (command as { shell?: unknown }).shell;
    if (typeof shell !== 'string' || shell.length === 0) {
      throw invalidOption('exec needs an argv list, { shell: "command string" } or { login: true }');
    }
    header.shell = shell;
  }
  if (options.cwd !== undefined) header.cwd = options.cwd;
  if (options.env !== undefined) header.env = options.env;
  if (options.timeoutMs !== undefined) header.timeoutMs = options.timeoutMs;
  if (stdin) header.stdin = true;
  if (options.pty !== undefined) {
    const { term, rows, cols } = options.pty;
    header.pty = { term, rows, cols };
  }
  return header;
}

/** How the command ended, from an `exit` frame the catalogue checked (older servers may omit fields). */
function exitOf(header: HeaderOfType<'exit'>): ExecExit {
  return {
    code: header.code ?? null,
    signal: (header.signal ?? null) as NodeJS.Signals | null,
    timedOut: header.timedOut === true,
    truncated: header.truncated === true,
    durationMs: header.durationMs ?? 0,
  };
}
