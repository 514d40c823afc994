import assert from 'node:assert/strict';
import { renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { lstat, mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from '../../src/client/client.js';
import { partialUploadName } from '../../src/protocol/files.js';
import {
  checksumFile,
  type FilesFixture,
  isCode,
  sha256File,
  startFiles,
  treeOf,
  writeRandomFile,
} from './fixtures.js';

const SECRET = 'outside the root: never read, never written\n';

describe('path jail', () => {
  let files: FilesFixture;
  let client: Client;
  let small: string;
  let outsideBefore: string[];

  before(async () => {
    files = await startFiles();
    client = await files.connect();
    small = join(files.local, 'small.txt');
    await writeFile(small, 'new contents\n');
    await writeFile(join(files.outside, 'secret.txt'), SECRET);
    await mkdir(join(files.root, 'real'));
    await writeFile(join(files.root, 'real', 'inside.txt'), 'inside\n');
    // Links that lead out: to a file, to a directory, one level down, relative, to the parent.
    await symlink(join(files.outside, 'secret.txt'), join(files.root, 'out-file'));
    await symlink(files.outside, join(files.root, 'out-dir'));
    await mkdir(join(files.root, 'a'));
    await symlink('../../outside', join(files.root, 'a', 'b'));
    await symlink('..', join(files.root, 'up'));
    // Links that stay inside are fine.
    await symlink('real/inside.txt', join(files.root, 'in-file'));
    await symlink('real', join(files.root, 'in-dir'));
    outsideBefore = await treeOf(files.outside);
  });

  after(async () => {
    await files.stop();
  });

  async function assertOutsideUntouched(): Promise<void> {
    assert.deepEqual(await treeOf(files.outside), outsideBefore);
    assert.equal(await readFile(join(files.outside, 'secret.txt'), 'utf8'), SECRET);
  }

  const ESCAPES = [
    '../escape.txt',
    'real/../../escape.txt',
    '/etc/passwd',
    'C:/escape.txt',
    'nul\u0000byte.txt',
    '..\\escape.txt',
    'real\\..\\..\\escape.txt',
    `${'n'.repeat(256)}.txt`,
    partialUploadName('x.bin'),
    `real/${partialUploadName('inside.txt')}`,
  ];

  test('every escape class is FORBIDDEN for put, get, list, stat and delete', async () => {
    for (const path of ESCAPES) {
      await assert.rejects(client.put(small, path), isCode('FORBIDDEN'), `put ${JSON.stringify(path)}`);
      await assert.rejects(client.get(path, join(files.local, 'got')), isCode('FORBIDDEN'), `get ${path}`);
      await assert.rejects(client.list(path), isCode('FORBIDDEN'), `list ${path}`);
      await assert.rejects(client.stat(path), isCode('FORBIDDEN'), `stat ${path}`);
      await assert.rejects(client.delete(path), isCode('FORBIDDEN'), `delete ${path}`);
    }
    await assertOutsideUntouched();
    assert.deepEqual(await treeOf(files.local), ['small.txt']);
  });

  test('symlinks that lead outside are FORBIDDEN, a symlinked directory mid-path too', async () => {
    const through = ['out-file', 'out-dir/secret.txt', 'a/b/secret.txt', 'up/outside/secret.txt'];
    for (const path of through) {
      await assert.rejects(client.get(path, join(files.local, 'got')), isCode('FORBIDDEN'), `get ${path}`);
      await assert.rejects(client.stat(path, { sha256: true }), isCode('FORBIDDEN'), `stat ${path}`);
      await assert.rejects(client.put(small, path, { overwrite: true }), isCode('FORBIDDEN'), `put ${path}`);
      await assert.rejects(client.delete(path), isCode('FORBIDDEN'), `delete ${path}`);
    }
    for (const path of [
      'out-dir/new.txt',
      'a/b/new.txt',
      'a/b/deeper/new.txt',
      'up/new.txt',
      'out-dir/x/y/z.txt',
    ]) {
      await assert.rejects(client.put(small, path), isCode('FORBIDDEN'), `put ${path}`);
    }
    for (const path of ['out-dir', 'a/b', 'up']) {
      await assert.rejects(client.list(path), isCode('FORBIDDEN'), `list ${path}`);
    }
    assert.deepEqual(await treeOf(files.local), ['small.txt']);
    await assertOutsideUntouched();
    // The links themselves are still there: delete refused them too.
    assert.ok((await lstat(join(files.root, 'out-dir'))).isSymbolicLink());
  });

  test('listings leave out links that lead outside; links that stay inside work', async () => {
    const names = (await client.list('')).map((entry) => entry.path);
    assert.deepEqual(names, ['a', 'in-dir', 'in-file', 'real']);
    assert.deepEqual(
      (await client.list('', { recursive: true })).map((entry) => entry.path),
      ['a', 'in-dir', 'in-file', 'real', 'real/inside.txt'],
    );
    const got = join(files.local, 'in.txt');
    await client.get('in-dir/inside.txt', got);
    assert.equal(await readFile(got, 'utf8'), 'inside\n');
    assert.equal((await client.stat('in-file')).size, 'inside\n'.length);
  });

  test('a directory swapped for a symlink during a put: nothing lands outside', async () => {
    const big = join(files.local, 'swap-dir.bin');
    await writeRandomFile(big, 8 * 1024 * 1024);
    await mkdir(join(files.root, 'drop'));
    let swapped = false;
    const result = await client.put(big, 'drop/x.bin', {
      onProgress: ({ bytes }) => {
        if (swapped || bytes < 1024 * 1024) return;
        swapped = true;
        renameSync(join(files.root, 'drop'), join(files.root, 'drop-moved'));
        symlinkSync(files.outside, join(files.root, 'drop'));
      },
    });
    assert.ok(swapped);
    // The upload stayed with the directory it was opened in, inside the root.
    assert.equal(result.size, 8 * 1024 * 1024);
    assert.ok((await lstat(join(files.root, 'drop-moved', 'x.bin'))).isFile());
    await assertOutsideUntouched();
    await assert.rejects(client.put(small, 'drop/y.txt'), isCode('FORBIDDEN'));
    await assertOutsideUntouched();
  });

  test('a directory moved out of the root during a put: nothing is published there', async () => {
    const big = join(files.local, 'move-out.bin');
    await writeRandomFile(big, 8 * 1024 * 1024);
    await mkdir(join(files.root, 'leaving'));
    let moved = false;
    await assert.rejects(
      client.put(big, 'leaving/x.bin', {
        onProgress: ({ bytes }) => {
          if (moved || bytes < 1024 * 1024) return;
          moved = true;
          renameSync(join(files.root, 'leaving'), join(files.outside, 'leaving'));
        },
      }),
      isCode('FORBIDDEN'),
    );
    await assert.rejects(lstat(join(files.outside, 'leaving', 'x.bin')), { code: 'ENOENT' });
    await rename(join(files.outside, 'leaving'), join(files.root, 'returned'));
    await assertOutsideUntouched();
  });

  test('a target swapped for a symlink during a put is replaced, its target untouched', async () => {
    const big = join(files.local, 'victim.bin');
    await writeRandomFile(big, 4 * 1024 * 1024);
    await writeFile(join(files.root, 'victim.bin'), 'old');
    let swapped = false;
    await client.put(big, 'victim.bin', {
      overwrite: true,
      onProgress: ({ bytes }) => {
        if (swapped || bytes < 1024 * 1024) return;
        swapped = true;
        unlinkSync(join(files.root, 'victim.bin'));
        symlinkSync(join(files.outside, 'secret.txt'), join(files.root, 'victim.bin'));
      },
    });
    assert.ok(swapped);
    const stats = await lstat(join(files.root, 'victim.bin'));
    assert.ok(stats.isFile() && stats.size === 4 * 1024 * 1024);
    await assertOutsideUntouched();
  });

  test('a file swapped for a symlink during a get: the open file is sent, the link never followed', async () => {
    const source = join(files.root, 'swap-get.bin');
    const sha = await writeRandomFile(source, 8 * 1024 * 1024);
    let swapped = false;
    const result = await client.get('swap-get.bin', join(files.local, 'swap-get.bin'), {
      onProgress: ({ bytes }) => {
        if (swapped || bytes < 1024 * 1024) return;
        swapped = true;
        renameSync(source, join(files.root, 'swap-get.moved'));
        symlinkSync(join(files.outside, 'secret.txt'), source);
      },
    });
    assert.ok(swapped);
    assert.equal(result.digest, await checksumFile(result.localPath, result.checksum));
    assert.equal(await sha256File(result.localPath), sha, 'the file opened before the swap was sent');
    await assert.rejects(client.get('swap-get.bin', join(files.local, 'again.bin')), isCode('FORBIDDEN'));
    await assertOutsideUntouched();
  });
});
