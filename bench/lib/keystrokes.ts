/**
 * Keystroke echo latency of an interactive client (`sockit shell -tt`, `ssh -tt`): one byte
 * written to the client's stdin, timed until the remote terminal's echo of it comes out of the
 * client's stdout. The remote side runs `cat` in a pty, so the echo is the pty's own (the line
 * discipline, canonical mode): what is measured is the round trip through client, network,
 * server and pty, not a shell's line editor.
 */
import { spawn } from 'node:child_process';
import { killOnExit } from './children.js';

/** A client session to type into. */
export interface EchoSession {
  /** Types one byte and resolves with the microseconds until its echo arrived. */
  type(byte: number): Promise<number>;
  /** Ends the session (stdin EOF, then SIGKILL if it lingers). */
  stop(): Promise<void>;
}

/** The letters typed, in turn: each keystroke waits for its own echo, so any letter is unambiguous. */
export const LETTERS = Buffer.from('abcdefghijklmnopqrstuvwxyz');

/**
 * Starts the client and waits until a first keystroke comes back (the session is up): the
 * remote pty echoes what was typed ahead as soon as it exists.
 */
export async function startEchoSession(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<EchoSession> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  killOnExit(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 4000) stderr += chunk;
  });
  let waiting: { byte: number; started: bigint; resolve: (micros: number) => void } | undefined;
  let failed: ((error: Error) => void) | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    if (waiting && chunk.includes(waiting.byte)) {
      const { started, resolve } = waiting;
      waiting = undefined;
      resolve(Number(process.hrtime.bigint() - started) / 1000);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', (code, signal) => failed?.(new Error(`${name} exited (${signal ?? code}): ${stderr}`)));
  const type = (byte: number, timeoutMs = 5000): Promise<number> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name}: no echo within ${timeoutMs} ms: ${stderr}`)),
        timeoutMs,
      );
      failed = reject;
      waiting = {
        byte,
        started: process.hrtime.bigint(),
        resolve: (micros) => {
          clearTimeout(timer);
          resolve(micros);
        },
      };
      child.stdin.write(Buffer.of(byte));
    });
  await type(0x78 /* x */, 20_000);
  return {
    type: (byte) => type(byte),
    async stop() {
      failed = undefined;
      child.stdin.end();
      const timeout = new Promise<'timeout'>((done) => setTimeout(() => done('timeout'), 2000).unref());
      if ((await Promise.race([exited, timeout])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
