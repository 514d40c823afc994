import type { Socket } from 'node:net';
import { type EchoTransform, upperAscii } from '../protocol/transform.js';
import type { RawHandler } from '../server/raw-server.js';
import type { Taps } from './session-log.js';

/** Words that end a client's session, as in the tutorials' echo servers. */
const QUIT_WORDS = new Set(['exit', 'quit']);
/** Longest partial line worth remembering: `quit\r` plus surrounding blanks. */
const TAIL_LIMIT = 16;
const NEWLINE = 0x0a;

export interface RawEchoOptions {
  transform?: EchoTransform;
  /** Sent once when a client connects (the seeds' "connected" message), followed by a newline. */
  greeting?: string | undefined;
  /** Observes the bytes of each connection (hex dump, session log). */
  taps?: (peer: string) => Taps | undefined;
}

/**
 * Finds where a client asked to leave: `exit` or `quit` on a line of its own, or sent bare
 * as a whole chunk (the seeds' Python client sends the word without a newline and the seeds'
 * servers compare each `recv()` with it). Keeps the unfinished line between chunks. A bare
 * chunk counts even after earlier messages without a newline (`hello`, `world`, then `exit`:
 * how the tutorials' interactive client talks), since those never end a line.
 */
export class QuitDetector {
  #tail = '';

  /** Returns the offset at which the quit line starts in `chunk`, or -1 when the client stays. */
  scan(chunk: Uint8Array): number {
    if (this.#tail !== '' && this.#isBareQuit(chunk)) return 0;
    let lineStart = 0;
    for (let index = chunk.indexOf(NEWLINE); index !== -1; index = chunk.indexOf(NEWLINE, index + 1)) {
      if (this.#isQuit(chunk, lineStart, index)) return lineStart;
      this.#tail = '';
      lineStart = index + 1;
    }
    if (this.#isQuit(chunk, lineStart, chunk.length)) return lineStart;
    this.#remember(chunk, lineStart);
    return -1;
  }

  /** A whole chunk without a newline that is only a quit word: the seeds' `recv() == b'exit'`. */
  #isBareQuit(chunk: Uint8Array): boolean {
    if (chunk.length > TAIL_LIMIT || chunk.includes(NEWLINE)) return false;
    return QUIT_WORDS.has(
      Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('latin1').trim(),
    );
  }

  #isQuit(chunk: Uint8Array, start: number, end: number): boolean {
    if (end - start + this.#tail.length > TAIL_LIMIT) return false;
    const line =
      this.#tail + Buffer.from(chunk.buffer, chunk.byteOffset + start, end - start).toString('latin1');
    return QUIT_WORDS.has(line.trim());
  }

  #remember(chunk: Uint8Array, start: number): void {
    const rest = chunk.length - start;
    if (rest + this.#tail.length > TAIL_LIMIT) {
      this.#tail = '\u0000'.repeat(TAIL_LIMIT + 1); // too long to be a quit word; wait for the newline
      return;
    }
    this.#tail += Buffer.from(chunk.buffer, chunk.byteOffset + start, rest).toString('latin1');
  }
}

/**
 * The seeds' raw TCP echo server for plain clients (nc, telnet, the tutorials' Python clients):
 * optional greeting, every chunk sent back (upper-cased with `upper`) as soon as it arrives,
 * and `exit`/`quit` ending that client's session. Any number of clients at once.
 */
export function rawEchoHandler(options: RawEchoOptions = {}): RawHandler {
  const transform = options.transform ?? 'none';
  const greeting =
    options.greeting === undefined
      ? undefined
      : Buffer.from(options.greeting.endsWith('\n') ? options.greeting : `${options.greeting}\n`);
  return {
    handle(connection) {
      const { socket } = connection;
      socket.setNoDelay(true);
      const taps = options.taps?.(connection.peer);
      if (greeting) send(socket, greeting, taps);
      const detector = new QuitDetector();
      return new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          taps?.received?.(chunk);
          const quitAt = detector.scan(chunk);
          const keep = quitAt === -1 ? chunk : chunk.subarray(0, quitAt);
          if (keep.length > 0 && !send(socket, transform === 'upper' ? upperAscii(keep) : keep, taps)) {
            socket.pause();
            socket.once('drain', () => socket.resume());
          }
          if (quitAt !== -1) {
            socket.removeAllListeners('data');
            resolve(); // the server ends the connection after this handler
          }
        });
        socket.once('end', () => resolve());
        socket.once('close', () => resolve());
      });
    },
  };
}

function send(socket: Socket, bytes: Uint8Array, taps: Taps | undefined): boolean {
  taps?.sent?.(bytes);
  return socket.write(bytes);
}
