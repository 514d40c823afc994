/**
 * The line-by-line upload protocol of the tutorials' file server, served safely: the client
 * sends chunks and waits for `success` after each, then sends `quit`. Each upload is written to
 * a temporary file inside the one directory the operator named (clients choose no paths) and
 * published under the next free name, `upload-1`, `upload-2`, … only when `quit` arrives: a
 * client that disconnects early leaves nothing behind, and no upload ever replaces another.
 */
import { randomUUID } from 'node:crypto';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { RESERVED_PREFIX } from '../protocol/files.js';
import type { RawHandler } from '../server/raw-server.js';
import { publishFile } from '../storage/publish.js';
import type { Taps } from './session-log.js';

export interface TutorialUploadOptions {
  /** Where finished uploads appear. It must exist; nothing is written outside it. */
  directory: string;
  /** Largest upload accepted; past it the client is told and the partial file removed. Default 1 GiB. */
  maxBytes?: number;
  /** Connection messages (`-v`). */
  notice?: ((line: string) => void) | undefined;
  /** Told the name of every upload that was published. */
  onUpload?: (name: string, bytes: number, peer: string) => void;
  taps?: (peer: string) => Taps | undefined;
}

/** What the tutorial client waits for after each chunk. */
const ACK = Buffer.from('success');
/** The tutorial server compares each `recv()` with exactly these bytes. */
const END = 'quit';
const DEFAULT_MAX_BYTES = 1024 ** 3;
/** Published names are `upload-N`; give up looking for a free one after this many. */
const MAX_NAME_TRIES = 100_000;

/** One handler per listener; any number of clients upload at once, each to its own temp file. */
export function tutorialUploadHandler(options: TutorialUploadOptions): RawHandler {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  return {
    async handle(connection) {
      const { socket, peer } = connection;
      socket.setNoDelay(true);
      const taps = options.taps?.(peer);
      // The files service hides and refuses RESERVED_PREFIX names, so the temp file is never served.
      const tempPath = join(options.directory, `${RESERVED_PREFIX}upload-${randomUUID()}`);
      const file = await open(tempPath, 'wx', 0o644);
      let published: string | undefined;
      let bytes: number | undefined;
      try {
        bytes = await receive(socket, file, maxBytes, taps);
        if (bytes !== undefined) {
          await file.sync();
          await file.close();
          published = await publishNext(tempPath, options.directory);
        }
      } finally {
        await file.close().catch(() => {});
        if (published === undefined) await unlink(tempPath).catch(() => {});
      }
      if (published === undefined) {
        options.notice?.(`${peer} left before "quit": its upload is discarded`);
        return;
      }
      options.notice?.(`${peer} uploaded ${bytes} bytes as ${published}`);
      options.onUpload?.(published, bytes!, peer);
    },
  };
}

/**
 * Appends each chunk and acknowledges it, until `quit` (resolves with the byte count) or the
 * client's end, an error or the size limit (resolves undefined).
 */
function receive(
  socket: Socket,
  file: FileHandle,
  maxBytes: number,
  taps: Taps | undefined,
): Promise<number | undefined> {
  return new Promise((resolve) => {
    let bytes = 0;
    let failed = false;
    const stop = (result: number | undefined): void => {
      socket.removeAllListeners('data');
      resolve(result);
    };
    socket.on('data', (chunk: Buffer) => {
      taps?.received?.(chunk);
      if (chunk.length === END.length && chunk.toString('latin1') === END) return stop(bytes);
      if (bytes + chunk.length > maxBytes) {
        socket.write(`sockit: refused: uploads here are at most ${maxBytes} bytes\n`);
        return stop(undefined);
      }
      bytes += chunk.length;
      socket.pause();
      file.write(chunk).then(
        () => {
          // Bytes already waiting belong to the same line (the client sends the next one only
          // after our ack): acknowledge the line once, not once per TCP segment.
          if (socket.readableLength === 0) {
            taps?.sent?.(ACK);
            socket.write(ACK);
          }
          socket.resume();
        },
        (error: Error) => {
          failed = true;
          socket.write(`sockit: cannot store the upload: ${error.message}\n`);
          stop(undefined);
        },
      );
    });
    socket.once('end', () => !failed && stop(undefined));
    socket.once('close', () => stop(undefined));
  });
}

/** Publishes the temp file as the first free `upload-N`, never replacing an existing file. */
async function publishNext(tempPath: string, directory: string): Promise<string> {
  for (let n = 1; n <= MAX_NAME_TRIES; n++) {
    const name = `upload-${n}`;
    if (await publishFile(tempPath, join(directory, name), false)) return name;
  }
  throw new Error(`no free upload-N name in ${directory}`);
}
