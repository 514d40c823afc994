import { closeSync, openSync, writeSync } from 'node:fs';
import { fromFileError } from '../errors.js';
import { HexDumper } from './hex-dump.js';

/** Observers of the bytes a session carries: hex dump, session log. Called before the bytes move on. */
export interface Taps {
  sent?(chunk: Uint8Array): void;
  received?(chunk: Uint8Array): void;
}

/**
 * `-o FILE`: every byte of the session, both directions, in the order they passed, as Ncat's
 * `-o` writes it. The file is created (or truncated) with mode 0600, since sessions carry
 * whatever the peers typed. Writes are synchronous: the log never lags or buffers without bound,
 * and it slows the relay down instead of losing bytes.
 */
export class SessionLog {
  readonly path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
    try {
      this.#fd = openSync(path, 'w', 0o600);
    } catch (error) {
      throw fromFileError(error, path, 'cannot open session log');
    }
  }

  write(chunk: Uint8Array): void {
    if (this.#fd === undefined) return;
    let offset = 0;
    while (offset < chunk.length) offset += writeSync(this.#fd, chunk, offset, chunk.length - offset);
  }

  close(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** What `--hex` and `-o` ask for, shared by every session of one command. */
export interface TapOptions {
  hex?: boolean;
  log?: SessionLog | undefined;
}

/** The taps for one session, or undefined when nothing watches (the fast path). */
export function sessionTaps(options: TapOptions, label = ''): Taps | undefined {
  const dumper = options.hex ? new HexDumper(label) : undefined;
  const log = options.log;
  if (!dumper && !log) return undefined;
  return {
    sent(chunk) {
      dumper?.sent(chunk);
      log?.write(chunk);
    },
    received(chunk) {
      dumper?.received(chunk);
      log?.write(chunk);
    },
  };
}
