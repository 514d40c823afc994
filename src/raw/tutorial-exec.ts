/**
 * The remote-command protocol of the tutorials' "sticky packet" server, served safely: the
 * client sends a command as bare text, the answer is a 4-byte native-endian signed length and
 * then the output. Unchanged tutorial clients work against it, but the command never reaches a
 * shell: it is split into argv (quotes honoured, nothing expanded), checked against the
 * operator's allow-list, run with stdin from /dev/null, a time limit and an output cap.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { endianness } from 'node:os';
import { SockitError } from '../errors.js';
import type { RawHandler } from '../server/raw-server.js';
import { splitCommandLine } from './argv-split.js';
import type { Taps } from './session-log.js';

/** What the policy says to start for an allowed command. */
export interface TutorialExecTarget {
  file: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface TutorialExecOptions {
  /** Checks an argv against the operator's policy; throws a SockitError (FORBIDDEN) to refuse it. */
  plan(argv: string[]): Promise<TutorialExecTarget>;
  /** Longest a command may run before its process group is killed. Default 30 s. */
  timeoutMs?: number;
  /** Bytes of stdout + stderr kept for one answer (the length comes first, so it is buffered). Default 1 MiB. */
  maxOutputBytes?: number;
  /** Connection messages (`-v`). */
  notice?: ((line: string) => void) | undefined;
  taps?: (peer: string) => Taps | undefined;
}

/** The tutorial server's answer when a command prints nothing: "执行成功" in GBK, as its client expects. */
export const EMPTY_OUTPUT_REPLY = Buffer.from([0xd6, 0xb4, 0xd0, 0xd0, 0xb3, 0xc9, 0xb9, 0xa6]);
/** A command is one `recv()`: more than this is not a command line. */
const MAX_COMMAND_BYTES = 4096;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_OUTPUT = 1024 * 1024;

/** `struct.pack("i", n) + body`: the header in this machine's byte order, written with the body in one call (no Nagle stall). */
export function lengthPrefixed(body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  if (endianness() === 'LE') header.writeInt32LE(body.length);
  else header.writeInt32BE(body.length);
  return Buffer.concat([header, body]);
}

/** One handler per listener; each client runs one command at a time, as its protocol requires. */
export function tutorialExecHandler(options: TutorialExecOptions): RawHandler {
  const limits = {
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxOutputBytes: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
  };
  return {
    handle(connection) {
      const { socket, peer } = connection;
      socket.setNoDelay(true);
      const taps = options.taps?.(peer);
      const gone = new AbortController();
      connection.signal.addEventListener('abort', () => gone.abort(), { once: true });
      return new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          taps?.received?.(chunk);
          socket.pause(); // one command at a time: the next waits for this answer
          void answer(chunk, options, limits, gone.signal, peer).then((reply) => {
            if (reply === undefined || socket.destroyed) return;
            send(socket, lengthPrefixed(reply), taps);
            socket.resume();
          });
        });
        socket.once('end', () => resolve());
        socket.once('close', () => {
          gone.abort(); // a client that left takes its running command with it
          resolve();
        });
      });
    },
  };
}

function send(socket: Socket, bytes: Buffer, taps: Taps | undefined): void {
  taps?.sent?.(bytes);
  socket.write(bytes);
}

/** The answer to one command; undefined for blank input, which the tutorial client never sends. */
async function answer(
  chunk: Buffer,
  options: TutorialExecOptions,
  limits: { timeoutMs: number; maxOutputBytes: number },
  signal: AbortSignal,
  peer: string,
): Promise<Buffer | undefined> {
  try {
    if (chunk.length > MAX_COMMAND_BYTES) {
      throw new SockitError('TOO_LARGE', `a command is at most ${MAX_COMMAND_BYTES} bytes`);
    }
    const argv = splitCommandLine(chunk.toString('utf8'));
    if (argv.length === 0) return EMPTY_OUTPUT_REPLY;
    const target = await options.plan(argv);
    options.notice?.(`${peer} runs ${argv.join(' ')}`);
    return await runCommand(target, limits, signal);
  } catch (error) {
    const message = error instanceof SockitError ? `${error.code}: ${error.message}` : String(error);
    options.notice?.(`${peer}: ${message}`);
    return Buffer.from(`sockit: ${message}\n`);
  }
}

/** Runs one command to its end and returns stdout, then stderr, then a note on how it ended. */
function runCommand(
  target: TutorialExecTarget,
  limits: { timeoutMs: number; maxOutputBytes: number },
  signal: AbortSignal,
): Promise<Buffer> {
  return new Promise((resolve) => {
    // detached: its own process group, so a kill reaches whatever the command started.
    const child = spawn(target.file, target.args, {
      cwd: target.cwd,
      env: target.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let kept = 0;
    let stopped: string | undefined;
    const kill = (why: string): void => {
      stopped ??= why;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    };
    const keep = (into: Buffer[]) => (data: Buffer) => {
      const room = limits.maxOutputBytes - kept;
      if (data.length > room) {
        into.push(data.subarray(0, room));
        kept = limits.maxOutputBytes;
        kill(`output cut at ${limits.maxOutputBytes} bytes`);
        return;
      }
      into.push(data);
      kept += data.length;
    };
    child.stdout!.on('data', keep(stdout));
    child.stderr!.on('data', keep(stderr));
    const timer = setTimeout(
      () => kill(`killed after the ${limits.timeoutMs} ms time limit`),
      limits.timeoutMs,
    );
    const onAbort = (): void => kill('the client left');
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      const why = error.code === 'ENOENT' ? 'no such program' : error.message;
      resolve(Buffer.from(`sockit: cannot run ${target.file}: ${why}\n`));
    });
    child.once('close', (code, killedBy) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      const notes: string[] = [];
      if (stopped) notes.push(`sockit: ${stopped}\n`);
      else if (killedBy) notes.push(`sockit: ended by ${killedBy}\n`);
      else if (code !== 0) notes.push(`sockit: exit status ${code}\n`);
      const body = Buffer.concat([...stdout, ...stderr, ...notes.map((note) => Buffer.from(note))]);
      resolve(body.length === 0 ? EMPTY_OUTPUT_REPLY : body);
    });
  });
}
