import type { Socket } from 'node:net';
import { FanOut } from './fan-out.js';
import type { Taps } from './session-log.js';

/**
 * `listen --keep-open` without `--exec`: one standard input for many clients. What is read goes
 * to every connected client (one Buffer, no copies); input is not read while nobody is connected,
 * so nothing typed is lost to an empty room. At input EOF every client's write side is shut down
 * (unless `shutdown` is false), and clients that connect later get EOF at once.
 */
export class SharedInput {
  readonly #input: NodeJS.ReadableStream;
  readonly #shutdown: boolean;
  // A client that reads nothing for 10 s while stdin waits on it is dropped, so it cannot stall the rest.
  readonly #fanOut = new FanOut();
  readonly #taps = new Map<Socket, Taps | undefined>();
  #ended = false;
  #waiting = false;
  #started = false;

  constructor(input: NodeJS.ReadableStream, options: { shutdown: boolean }) {
    this.#input = input;
    this.#shutdown = options.shutdown;
  }

  attach(socket: Socket, taps?: Taps): void {
    if (this.#ended) {
      if (this.#shutdown) socket.end();
      return;
    }
    this.#fanOut.add(socket);
    this.#taps.set(socket, taps);
    this.#start();
    this.#flow();
  }

  detach(socket: Socket): void {
    this.#fanOut.delete(socket);
    this.#taps.delete(socket);
    if (this.#fanOut.size === 0 && !this.#ended) this.#input.pause();
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#input.on('data', (data: Buffer | string) => {
      const chunk = typeof data === 'string' ? Buffer.from(data) : data;
      for (const [, taps] of this.#taps) taps?.sent?.(chunk);
      const congested = this.#fanOut.send(chunk);
      if (congested) {
        this.#waiting = true;
        this.#input.pause();
        congested.then(() => {
          this.#waiting = false;
          this.#flow();
        });
      }
    });
    this.#input.once('end', () => {
      this.#ended = true;
      if (!this.#shutdown) return;
      for (const socket of this.#fanOut.members) socket.end();
    });
    this.#input.on('error', () => {});
  }

  #flow(): void {
    if (!this.#waiting && !this.#ended && this.#fanOut.size > 0) this.#input.resume();
  }
}
