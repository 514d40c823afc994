import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { syncToRemote } from '../../src/client/sync.js';
import { globMatcher } from '../../src/client/sync-glob.js';
import { filesAndClientPerSuite, sha256File, treeOf } from '../files/fixtures.js';

/** Path → SHA-256 of every regular file under `dir` (symlinks not followed): equal trees have equal maps. */
async function treeHash(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of await treeOf(dir)) {
    const stats = await lstat(join(dir, path)).catch(() => undefined);
    if (stats?.isFile()) out[path] = await sha256File(join(dir, path));
  }
  return out;
}

describe('sync local → remote (library)', { timeout: 60_000 }, () => {
  const suite = filesAndClientPerSuite();

  test('new, changed, unchanged and deleted files; mode and mtime kept; --dry-run changes nothing', async () => {
    const { files, client } = suite;
    const src = join(files.local, 'src');
    await mkdir(join(src, 'sub', 'deep'), { recursive: true });
    await writeFile(join(src, 'a.txt'), 'alpha\n');
    await writeFile(join(src, 'sub', 'b.txt'), 'bravo\n');
    await writeFile(join(src, 'sub', 'deep', 'c.sh'), '#!/bin/sh\n');
    await chmod(join(src, 'sub', 'deep', 'c.sh'), 0o755);
    const old = new Date('2020-01-02T03:04:05.678Z');
    await utimes(join(src, 'a.txt'), old, old);
    await symlink('/etc/passwd', join(src, 'out-of-root'));

    const first = await syncToRemote(client, src, 'mirror');
    assert.equal(first.sent, 3);
    assert.equal(first.skipped, 0);
    assert.deepEqual(first.unsupported, ['out-of-root'], 'a symlink is not followed');
    const dest = join(files.root, 'mirror');
    assert.deepEqual(await treeHash(dest), await treeHash(src));
    assert.ok(Math.abs((await stat(join(dest, 'a.txt'))).mtimeMs - old.getTime()) < 2, 'mtime kept');
    assert.equal((await stat(join(dest, 'sub', 'deep', 'c.sh'))).mode & 0o777, 0o755);
    assert.ok(!(await treeOf(dest)).includes('out-of-root'));

    const second = await syncToRemote(client, src, 'mirror');
    assert.deepEqual([second.sent, second.skipped, second.bytes], [0, 3, 0], 'unchanged tree sends nothing');

    await writeFile(join(src, 'sub', 'b.txt'), 'bravo, longer now\n');
    await writeFile(join(src, 'new.txt'), 'new\n');
    await writeFile(join(dest, 'extra.txt'), 'only on the server\n');
    await mkdir(join(dest, 'gone-dir'));
    await writeFile(join(dest, 'gone-dir', 'x'), 'x');

    const before = await treeHash(dest);
    const dry = await syncToRemote(client, src, 'mirror', { delete: true, dryRun: true });
    assert.deepEqual(dry.changes.map((c) => `${c.action} ${c.path}`).sort(), [
      'delete extra.txt',
      'delete gone-dir',
      'delete gone-dir/x',
      'send new.txt',
      'send sub/b.txt',
    ]);
    assert.equal(dry.sent, 0);
    assert.deepEqual(await treeHash(dest), before, '--dry-run changed nothing');

    const third = await syncToRemote(client, src, 'mirror', { delete: true });
    assert.deepEqual([third.sent, third.skipped, third.deleted], [2, 2, 3]);
    assert.deepEqual(await treeHash(dest), await treeHash(src));
    assert.ok(!(await treeOf(dest)).includes('gone-dir'));
  });

  test('--exclude: matching paths are neither sent nor deleted, excluded directories not walked', async () => {
    const { files, client } = suite;
    const src = join(files.local, 'ex');
    await mkdir(join(src, 'build', 'deep'), { recursive: true });
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'keep.txt'), 'keep\n');
    await writeFile(join(src, 'sub', 'scratch.tmp'), 'tmp\n');
    await writeFile(join(src, 'build', 'deep', 'out.o'), 'obj\n');
    const dest = join(files.root, 'ex');
    await mkdir(join(dest, 'old'), { recursive: true });
    await writeFile(join(dest, 'old', 'server.tmp'), 'kept on the server\n');
    const result = await syncToRemote(client, src, 'ex', {
      exclude: ['*.tmp', 'build/**', 'build'],
      delete: true,
    });
    assert.deepEqual(
      result.changes.map((c) => `${c.action} ${c.path}`),
      ['send keep.txt'],
    );
    assert.deepEqual((await treeOf(dest)).sort(), ['keep.txt', 'old', 'old/server.tmp']);
  });

  test('many small files over one connection', async () => {
    const { files, client } = suite;
    const src = join(files.local, 'many');
    await mkdir(src, { recursive: true });
    for (let i = 0; i < 500; i++) await writeFile(join(src, `f${i}.txt`), `file ${i}\n`);
    const first = await syncToRemote(client, src, 'many');
    assert.equal(first.sent, 500);
    const again = await syncToRemote(client, src, 'many');
    assert.deepEqual([again.sent, again.skipped], [0, 500]);
  });
});

describe('sync globs', () => {
  test('* and ? stay in a segment, ** crosses, a bare pattern matches at any depth', () => {
    const tmp = globMatcher('*.tmp');
    assert.ok(tmp('a.tmp') && tmp('sub/b.tmp'));
    assert.ok(!tmp('a.tmpx'));
    const build = globMatcher('build/**');
    assert.ok(build('build/x/y.o'));
    assert.ok(!build('src/build/x'), 'a pattern with / is anchored at the root');
    const one = globMatcher('src/?.c');
    assert.ok(one('src/a.c') && !one('src/ab.c') && !one('src/a/b.c'));
    assert.ok(globMatcher('a+b(1).txt')('a+b(1).txt'), 'regex characters are literal');
  });
});
