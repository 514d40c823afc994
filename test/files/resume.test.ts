import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { link, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/client/client.js';
import type { TransferOptions } from '../../src/client/files.js';
import { SockitError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { DATA_CHUNK_BYTES, partialDownloadName, partialUploadName } from '../../src/protocol/files.js';
import type { Frame } from '../../src/protocol/frame.js';
import type { ServerRequest } from '../../src/server/request.js';
import type { Service } from '../../src/server/service.js';
import { CLI, runCli, spawnForFile, TEST_TOKEN, tempDir, waitForLine } from '../helpers.js';
import {
  checksumFile,
  type FilesFixture,
  isCode,
  sha256File,
  startFiles,
  treeOf,
  writeRandomFile,
} from './fixtures.js';

const MiB = 1024 * 1024;

/** Runs a transfer, cancels it once `atBytes` are across, and checks that it failed with CANCELLED. */
async function cancelAt(
  atBytes: number,
  transfer: (options: TransferOptions) => Promise<unknown>,
): Promise<void> {
  const controller = new AbortController();
  await assert.rejects(
    transfer({
      signal: controller.signal,
      onProgress: ({ bytes }) => {
        if (bytes >= atBytes) controller.abort();
      },
    }),
    isCode('CANCELLED'),
  );
}

/**
 * Wraps the files service so that the first put stops taking data after `afterBytes`: its frame
 * handler returns a promise that settles only on `release()`, which pauses the client's socket
 * through backpressure. Deterministic: no timers, only events.
 */
function gateFirstPut(afterBytes: number) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached!: () => void;
  const reachedGate = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let gated = false;
  let settle!: () => void;
  // The first put's handler has finished: its partial is flushed and closed.
  const firstPutSettled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const wrap = (service: Service): Service => ({
    ...service,
    requests: {
      ...service.requests,
      put(request: ServerRequest) {
        if (!gated) {
          gated = true;
          let inner: ServerRequest['onFrame'];
          let received = 0;
          Object.defineProperty(request, 'onFrame', {
            configurable: true,
            get: () => inner,
            set: (handler: ServerRequest['onFrame']) => {
              inner =
                handler &&
                ((frame: Frame) => {
                  if (frame.header.type === 'data') {
                    received += frame.body.length;
                    if (received >= afterBytes) {
                      reached();
                      return released.then(() => handler(frame));
                    }
                  }
                  return handler(frame);
                });
            },
          });
          const handled = Promise.resolve(service.requests!.put!(request));
          handled.then(settle, settle);
          return handled;
        }
        return service.requests!.put!(request);
      },
    },
  });
  return { wrap, release, reachedGate, firstPutSettled };
}

describe('resume', () => {
  let files: FilesFixture;
  let gate: ReturnType<typeof gateFirstPut>;

  /** The server's log, JSON lines at debug level. */
  const log = new PassThrough();
  const logLines: Record<string, unknown>[] = [];
  const logReader = createInterface({ input: log });
  logReader.on('line', (line) => logLines.push(JSON.parse(line) as Record<string, unknown>));
  /** Resolves once the server has logged a line with this message, or any error. */
  const loggedOrFailed = (message: string): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (!logLines.some((line) => line.msg === message || line.level === 'error')) return;
        logReader.off('line', check);
        resolve();
      };
      logReader.on('line', check);
      check();
    });

  before(async () => {
    gate = gateFirstPut(6 * MiB);
    files = await startFiles({
      wrap: (service) => gate.wrap(service),
      serve: { log: createLogger({ stream: log, json: true, level: 'debug' }) },
    });
  });

  after(async () => {
    gate.release();
    await files.stop();
  });

  test('kill the client mid-upload, then put --resume finishes it byte-exact', async () => {
    const source = join(files.local, 'killed-client.bin');
    const sha = await writeRandomFile(source, 24 * MiB);
    const child = spawnForFile(
      process.execPath,
      [CLI, 'put', '--json', source, files.address, 'killed.bin'],
      {
        env: { ...process.env, SOCKIT_TOKEN: TEST_TOKEN },
      },
    );
    child.stdout.resume();
    child.stderr.resume();
    const exited = once(child, 'exit');
    await gate.reachedGate;
    child.kill('SIGKILL');
    await exited;
    gate.release();
    // The server flushes what arrived after the disconnect; wait for that, not for the close.
    await gate.firstPutSettled;
    const partial = join(files.root, partialUploadName('killed.bin'));
    const kept = (await stat(partial)).size;
    assert.ok(kept >= 6 * MiB - DATA_CHUNK_BYTES, `partial keeps what arrived (${kept} bytes)`);
    await assert.rejects(stat(join(files.root, 'killed.bin')), { code: 'ENOENT' });
    // A client that vanished is routine: a debug line, no error with a stack trace.
    await loggedOrFailed('request ended by a disconnect');
    assert.deepEqual(
      logLines.filter((line) => line.level === 'error'),
      [],
    );

    const resumed = await runCli(['put', '--json', '--resume', source, files.address, 'killed.bin'], {
      env: { SOCKIT_TOKEN: TEST_TOKEN },
    });
    assert.equal(resumed.code, 0, resumed.stderr);
    const done = resumed.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((event) => event.event === 'done');
    assert.ok(done, resumed.stdout);
    assert.equal(done.checksum, 'xxh64');
    assert.equal(done.digest, await checksumFile(source, 'xxh64'));
    assert.ok((done.resumedFrom as number) > 0, 'continued from the kept partial');
    assert.equal(await sha256File(join(files.root, 'killed.bin')), sha);
    await assert.rejects(stat(partial), { code: 'ENOENT' });

    // Running it once more skips the identical file.
    const again = await runCli(['put', '--json', '--resume', source, files.address, 'killed.bin'], {
      env: { SOCKIT_TOKEN: TEST_TOKEN },
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /"skipped":true/);
  });

  test('an upload cancelled by AbortSignal keeps its partial; resume continues and verifies', async () => {
    const client = await files.connect();
    const source = join(files.local, 'aborted.bin');
    const sha = await writeRandomFile(source, 12 * MiB);
    await cancelAt(4 * MiB, (options) => client.put(source, 'aborted.bin', options));
    assert.ok(await client.ping());
    const progress: number[] = [];
    const result = await client.put(source, 'aborted.bin', {
      resume: true,
      onProgress: ({ bytes }) => progress.push(bytes),
    });
    assert.ok(result.resumedFrom > 0 && result.resumedFrom <= 12 * MiB, String(result.resumedFrom));
    assert.equal(progress[0], result.resumedFrom);
    assert.equal(result.digest, await checksumFile(result.localPath, result.checksum));
    assert.equal(await sha256File(join(files.root, 'aborted.bin')), sha);
  });

  test('a kept partial of a different file is detected and the upload starts over', async () => {
    const client = await files.connect();
    const source = join(files.local, 'changed.bin');
    await writeRandomFile(source, 8 * MiB);
    await cancelAt(2 * MiB, (options) => client.put(source, 'changed.bin', options));
    const sha = await writeRandomFile(source, 8 * MiB); // the local file changed meanwhile
    const result = await client.put(source, 'changed.bin', { resume: true });
    assert.equal(result.resumedFrom, 0);
    assert.equal(await sha256File(join(files.root, 'changed.bin')), sha);
  });

  test('a resume takes over an upload the server still thinks is running', async () => {
    const client = await files.connect();
    const source = join(files.local, 'takeover.bin');
    const sha = await writeRandomFile(source, 4 * MiB);
    const stuck = gateFirstPut(MiB);
    const held = await startFiles({ wrap: (service) => stuck.wrap(service) });
    try {
      const first = await held.connect();
      const firstPut = first.put(source, 'takeover.bin').then(
        () => undefined,
        (error: unknown) => error,
      );
      await stuck.reachedGate;
      const second = await held.connect();
      const result = await second.put(source, 'takeover.bin', { resume: true });
      assert.equal(result.digest, await checksumFile(result.localPath, result.checksum));
      stuck.release();
      assert.ok(isCode('CONFLICT')(await firstPut), 'the first upload was taken over');
      assert.equal(await sha256File(join(held.root, 'takeover.bin')), sha);
    } finally {
      stuck.release();
      await held.stop();
    }
    assert.ok(await client.ping());
  });

  test('a kept partial download of a file that changed since is detected and fetched whole', async () => {
    const client = await files.connect();
    await writeRandomFile(join(files.root, 'changing.bin'), 6 * MiB);
    const target = join(files.local, 'changing.bin');
    await cancelAt(2 * MiB, (options) => client.get('changing.bin', target, options));
    const sha = await writeRandomFile(join(files.root, 'changing.bin'), 6 * MiB);
    const result = await client.get('changing.bin', target, { resume: true });
    assert.equal(result.resumedFrom, 0);
    assert.equal(result.digest, await checksumFile(result.localPath, result.checksum));
    assert.equal(await sha256File(target), sha);
    assert.deepEqual(
      (await treeOf(files.local)).filter((name) => name.startsWith('.sockit-')),
      [],
    );
  });

  test('a download cancelled by AbortSignal keeps its local partial; resume continues and verifies', async () => {
    const client = await files.connect();
    const sha = await writeRandomFile(join(files.root, 'download.bin'), 12 * MiB);
    const target = join(files.local, 'download.bin');
    await cancelAt(4 * MiB, (options) => client.get('download.bin', target, options));
    await assert.rejects(stat(target), { code: 'ENOENT' }, 'nothing under the final name');
    const partial = join(files.local, partialDownloadName('download.bin'));
    assert.ok((await stat(partial)).size >= 4 * MiB);
    const result = await client.get('download.bin', target, { resume: true });
    assert.ok(result.resumedFrom >= 4 * MiB);
    assert.equal(result.digest, await checksumFile(result.localPath, result.checksum));
    assert.equal(await sha256File(target), sha);
    await assert.rejects(stat(partial), { code: 'ENOENT' });
    const skipped = await client.get('download.bin', target, { resume: true });
    assert.equal(skipped.skipped, true);
  });
});

describe('server killed mid-upload', () => {
  let children: ChildProcess[] = [];
  let dirs: { cleanup: () => Promise<void> }[] = [];

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const dir of dirs) await dir.cleanup();
    children = [];
    dirs = [];
  });

  async function startServerChild(
    root: string,
    state: string,
  ): Promise<{ child: ChildProcess; address: string }> {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        'tcp://127.0.0.1:0',
        '--files',
        root,
        '--token-file',
        join(state, 'token'),
        '--state-dir',
        state,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    child.stderr!.resume();
    const [, address] = (await waitForLine(
      child.stdout!,
      /^\s+(tcp:\/\/127\.0\.0\.1:\d+)/,
    )) as RegExpMatchArray;
    child.stdout!.resume();
    return { child, address: address! };
  }

  test('SIGKILL the server, restart it, resume: the result is byte-exact', async () => {
    const base = await tempDir();
    dirs.push(base);
    const root = join(base.path, 'root');
    const state = join(base.path, 'state');
    await mkdir(root);
    await mkdir(state);
    await writeFile(join(state, 'token'), `${TEST_TOKEN}\n`, { mode: 0o600 });
    const source = join(base.path, 'payload.bin');
    const size = 64 * MiB;
    const sha = await writeRandomFile(source, size);
    const partial = join(root, partialUploadName('payload.bin'));

    const first = await startServerChild(root, state);
    const client = await connect(first.address, { token: TEST_TOKEN, stateDir: state, env: {} });
    const firstExit = once(first.child, 'exit');
    let killed = false;
    await assert.rejects(
      client.put(source, 'payload.bin', {
        onProgress: ({ bytes }) => {
          // Kill once the server has written some of the file: the client is never more than
          // socket buffers plus the server's write queue ahead of the disk.
          if (killed || bytes < 8 * MiB) return;
          const written = statSync(partial, { throwIfNoEntry: false })?.size ?? 0;
          if (written > 0) {
            killed = true;
            first.child.kill('SIGKILL');
          }
        },
      }),
      (error: unknown) =>
        error instanceof SockitError && (error.code === 'CLOSED' || error.code === 'CONNECT_FAILED'),
    );
    assert.ok(killed, 'the server was killed mid-upload');
    await firstExit;
    client.destroy();
    const kept = (await stat(partial)).size;
    assert.ok(kept > 0 && kept < size, `partial of ${kept} bytes kept`);
    assert.deepEqual(
      (await treeOf(root)).filter((name) => !name.startsWith('.sockit-')),
      [],
    );

    const second = await startServerChild(root, state);
    const again = await connect(second.address, { token: TEST_TOKEN, stateDir: state, env: {} });
    const result = await again.put(source, 'payload.bin', { resume: true });
    assert.ok(result.resumedFrom > 0, `resumed from ${result.resumedFrom}`);
    assert.equal(result.digest, await checksumFile(result.localPath, result.checksum));
    assert.equal(await sha256File(join(root, 'payload.bin')), sha);
    assert.deepEqual(await treeOf(root), ['payload.bin']);
    await again.close();
    const secondExit = once(second.child, 'exit');
    second.child.kill('SIGTERM');
    await secondExit;
  });
});

describe('kept partials the server did not write', () => {
  let files: FilesFixture;
  before(async () => {
    files = await startFiles();
  });
  after(() => files.stop());

  test('a partial hard-linked to a file outside the root is refused; the outside file is untouched', async () => {
    const client = await files.connect();
    const outsideFile = join(files.outside, 'precious.txt');
    await writeFile(outsideFile, 'precious bytes outside the root\n');
    const before = await sha256File(outsideFile);
    await link(outsideFile, join(files.root, partialUploadName('linked.bin')));
    const source = join(files.local, 'linked.bin');
    const sha = await writeRandomFile(source, 3 * DATA_CHUNK_BYTES + 5);

    await assert.rejects(client.put(source, 'linked.bin', { resume: true }), (error: unknown) => {
      assert.ok(isCode('FORBIDDEN')(error), String(error));
      assert.match(
        (error as Error).message,
        /kept partial upload of linked\.bin has 2 links .*without resume/,
      );
      return true;
    });
    assert.equal(await sha256File(outsideFile), before);
    // Without resume the planted name is replaced by a partial of our own: the upload works.
    const put = await client.put(source, 'linked.bin');
    assert.equal(put.digest, await checksumFile(source, put.checksum));
    assert.equal(await sha256File(join(files.root, 'linked.bin')), sha);
    assert.equal(await sha256File(outsideFile), before);
    assert.equal((await stat(outsideFile)).nlink, 1, 'the planted link is gone');
  });

  test('a partial that is a symlink is not followed', async () => {
    const client = await files.connect();
    const outsideFile = join(files.outside, 'target.txt');
    await writeFile(outsideFile, 'outside\n');
    await symlink(outsideFile, join(files.root, partialUploadName('sym.bin')));
    const source = join(files.local, 'sym.bin');
    await writeRandomFile(source, 1000);
    await assert.rejects(client.put(source, 'sym.bin', { resume: true }), (error: unknown) => {
      assert.ok(isCode('FORBIDDEN')(error), String(error));
      assert.match((error as Error).message, /kept partial upload of sym\.bin is a symlink/);
      return true;
    });
    assert.equal(await readFile(outsideFile, 'utf8'), 'outside\n');
    await client.put(source, 'sym.bin');
    assert.equal(await readFile(outsideFile, 'utf8'), 'outside\n');
  });
});
