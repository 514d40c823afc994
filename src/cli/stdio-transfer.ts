/**
 * `sockit get ADDR REMOTE -` and `sockit put - ADDR REMOTE`, as scp and curl users expect: the
 * data goes through a private temporary file, so stdout only ever receives bytes whose SHA-256
 * matched, and stdin is uploaded with the same verified, atomic, resumable transfer as a file.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Client } from '../client/client.js';
import type { TransferItem, TreeCallbacks } from '../client/files-tree.js';
import { SockitError } from '../errors.js';
import { rootRelative } from './files-common.js';

/** The local name that means stdin (put) or stdout (get). */
export const STDIO_NAME = '-';

async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sockit-stdio-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Downloads one remote file and writes it to stdout once verified. */
export async function downloadToStdout(client: Client, remote: string, signal: AbortSignal): Promise<void> {
  await withTempDir(async (dir) => {
    const path = join(dir, 'download');
    await client.get(remote, path, { signal, preserve: false });
    for await (const chunk of createReadStream(path)) {
      if (!process.stdout.write(chunk)) await once(process.stdout, 'drain', { signal });
    }
  });
}

/**
 * Reads stdin to its end into a temporary file and hands the caller the item to upload; REMOTE
 * must name a file, since stdin has no name of its own.
 */
export async function withStdinFile<T>(remote: string, work: (item: TransferItem) => Promise<T>): Promise<T> {
  const path = rootRelative(remote);
  if (path === '' || path === '.' || path.endsWith('/')) {
    throw new SockitError(
      'USAGE',
      `put - needs a file name as REMOTE (stdin has no name), e.g. sockit put - ADDR notes.txt; got "${remote}"`,
    );
  }
  return withTempDir(async (dir) => {
    const localPath = join(dir, 'stdin');
    await pipeline(process.stdin, createWriteStream(localPath, { mode: 0o600 }));
    const { size } = await stat(localPath);
    return work({ localPath, remotePath: path, size });
  });
}

/** Progress callbacks that show the upload as coming from `(stdin)`, not from the temporary file. */
export function fromStdin(callbacks: TreeCallbacks): TreeCallbacks {
  const shown = (item: TransferItem): TransferItem => ({ ...item, localPath: '(stdin)' });
  return {
    onFileStart: (item, index, count) => callbacks.onFileStart?.(shown(item), index, count),
    onProgress: (item, bytes, overall) => callbacks.onProgress?.(shown(item), bytes, overall),
    onFileDone: (item, result) => callbacks.onFileDone?.(shown(item), result),
  };
}
