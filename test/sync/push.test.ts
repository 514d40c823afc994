import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { syncFromRemote, syncToRemote } from '../../src/client/sync.js';
import { filterRules, globMatcher } from '../../src/client/sync-glob.js';
import { BATCH_MAX_FILE_BYTES, linkTargetInside } from '../../src/protocol/files.js';
import type { Service } from '../../src/server/service.js';
import { digestOf } from '../../src/storage/checksum.js';
import { filesAndClientPerSuite, isCode, startFiles, treeOf } from '../files/fixtures.js';
import { assertSameTree, treeState } from './tree.js';

/** A source tree with files, modes, an old mtime, an empty directory and an inside link. */
async function makeSource(src: string): Promise<void> {
  await mkdir(join(src, 'sub', 'deep'), { recursive: true });
  await mkdir(join(src, 'empty'));
  await chmod(join(src, 'empty'), 0o750);
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'bravo\n');
  await writeFile(join(src, 'sub', 'deep', 'c.sh'), '#!/bin/sh\n');
  await chmod(join(src, 'sub', 'deep', 'c.sh'), 0o755);
  const old = new Date('2020-01-02T03:04:05.678Z');
  await utimes(join(src, 'a.txt'), old, old);
  await symlink('../a.txt', join(src, 'sub', 'to-a'));
  // Directory times last (their entries are in place), each its own, as rsync -a keeps them.
  for (const [at, dir] of SOURCE_DIRS.entries()) {
    const stamp = new Date(Date.UTC(2019, 0, at + 1));
    await utimes(join(src, dir), stamp, stamp);
  }
}

const SOURCE_DIRS = ['sub/deep', 'sub', 'empty'];

/** Each directory's mtime in whole milliseconds (the wire carries milliseconds). */
async function directoryTimes(root: string): Promise<number[]> {
  return Promise.all(SOURCE_DIRS.map(async (dir) => Math.round((await stat(join(root, dir))).mtimeMs)));
}

for (const direction of ['push', 'pull'] as const) {
  describe(
    `sync ${direction === 'push' ? 'local → remote' : 'remote → local'} (library)`,
    { timeout: 60_000 },
    () => {
      const suite = filesAndClientPerSuite();
      /** Where the source and destination of this direction live, and the sync call itself. */
      const sides = (name: string) => {
        const { files, client } = suite;
        const src = direction === 'push' ? join(files.local, name) : join(files.root, name);
        const dest = direction === 'push' ? join(files.root, name) : join(files.local, name);
        const run = (options: Parameters<typeof syncToRemote>[3] = {}) =>
          direction === 'push'
            ? syncToRemote(client, src, name, options)
            : syncFromRemote(client, name, dest, options);
        return { src, dest, run, outside: files.outside };
      };

      test('new, changed, unchanged, deleted; modes, mtimes, empty dirs, links kept; --dry-run changes nothing', async () => {
        const { src, dest, run } = sides('tree');
        await makeSource(src);
        const first = await run();
        assert.equal(first.sent, 3);
        assert.equal(first.links, 1);
        await assertSameTree(dest, src);
        assert.deepEqual(await directoryTimes(dest), await directoryTimes(src), 'directory mtimes kept');

        const second = await run();
        assert.deepEqual(
          [second.sent, second.bytes, second.changes.length],
          [0, 0, 0],
          'unchanged tree sends nothing',
        );

        await writeFile(join(src, 'sub', 'b.txt'), 'bravo, longer now\n');
        await writeFile(join(src, 'new.txt'), 'new\n');
        await mkdir(join(dest, 'gone-dir'));
        await writeFile(join(dest, 'gone-dir', 'x'), 'x');
        await writeFile(join(dest, 'extra.txt'), 'only on the destination\n');
        const before = await treeState(dest);
        const dry = await run({ delete: true, dryRun: true });
        assert.deepEqual(
          dry.changes.map((c) => `${c.action} ${c.path}`),
          ['send new.txt', 'send sub/b.txt', 'delete gone-dir/x', 'delete gone-dir', 'delete extra.txt'],
        );
        assert.deepEqual(
          await treeState(dest),
          before,
          '--dry-run changed nothing (tree hash before = after)',
        );

        const third = await run({ delete: true });
        assert.deepEqual([third.sent, third.deleted], [2, 3]);
        await assertSameTree(dest, src);
        assert.deepEqual(
          await directoryTimes(dest),
          await directoryTimes(src),
          'a replaced file does not leave its directory with a new mtime',
        );
      });

      test('--include/--exclude: first match wins; excluded paths neither copied nor deleted', async () => {
        const { src, dest, run } = sides('filter');
        await mkdir(join(src, 'build', 'deep'), { recursive: true });
        await mkdir(join(src, 'sub'), { recursive: true });
        await writeFile(join(src, 'keep.txt'), 'keep\n');
        await writeFile(join(src, 'important.tmp'), 'kept by --include\n');
        await writeFile(join(src, 'sub', 'scratch.tmp'), 'tmp\n');
        await writeFile(join(src, 'build', 'deep', 'out.o'), 'obj\n');
        await mkdir(join(dest, 'old'), { recursive: true });
        await writeFile(join(dest, 'old', 'other.tmp'), 'excluded, so kept on the destination\n');
        const result = await run({
          filter: [
            { action: 'include', pattern: 'important.tmp' },
            { action: 'exclude', pattern: '*.tmp' },
            { action: 'exclude', pattern: 'build' },
          ],
          delete: true,
        });
        assert.deepEqual(
          result.changes.map((c) => `${c.action} ${c.path}`),
          ['mkdir sub', 'send important.tmp', 'send keep.txt'],
        );
        assert.deepEqual((await treeOf(dest)).sort(), [
          'important.tmp',
          'keep.txt',
          'old',
          'old/other.tmp',
          'sub',
        ]);
      });

      test('a link leading out of the root is refused and nothing is written outside', async () => {
        const { src, dest, run, outside } = sides('links');
        await mkdir(join(src, 'dir'), { recursive: true });
        await writeFile(join(src, 'dir', 'f.txt'), 'f\n');
        await symlink(outside, join(src, 'abs-out'));
        await symlink('../../../outside', join(src, 'dir', 'rel-out'));
        await symlink('f.txt', join(src, 'dir', 'fine'));
        const outsideBefore = await treeOf(outside);
        const result = await run();
        assert.deepEqual(result.refused.map((r) => r.path).sort(), ['abs-out', 'dir/rel-out']);
        assert.deepEqual((await treeOf(dest)).sort(), ['dir', 'dir/f.txt', 'dir/fine']);
        assert.deepEqual(await treeOf(outside), outsideBefore, 'nothing written outside');
      });

      test('--checksum compares contents: a same-size, same-mtime change is found only with it', async () => {
        const { src, dest, run } = sides('sums');
        await mkdir(src, { recursive: true });
        await writeFile(join(src, 'f.bin'), 'AAAA');
        await run();
        // Same size, same mtime, other bytes: the quick check cannot see it (and did not read it).
        await writeFile(join(src, 'f.bin'), 'BBBB');
        const stamp = new Date('2021-05-06T07:08:09.000Z');
        await utimes(join(src, 'f.bin'), stamp, stamp);
        await utimes(join(dest, 'f.bin'), stamp, stamp);
        assert.equal((await run()).sent, 0, 'size and mtime equal: not read, not sent');
        const checked = await run({ checksum: true });
        assert.equal(checked.sent, 1);
        await assertSameTree(dest, src);
        assert.equal((await run({ checksum: true })).sent, 0, 'equal contents: nothing sent');
      });
    },
  );
}

describe('sync: a destination link is never written through', { timeout: 60_000 }, () => {
  const suite = filesAndClientPerSuite();
  test('pull: a local link to outside where the server has a directory is replaced, not followed', async () => {
    const { files, client } = suite;
    await mkdir(join(files.root, 'src', 'd'), { recursive: true });
    await writeFile(join(files.root, 'src', 'd', 'x.txt'), 'x\n');
    await mkdir(join(files.local, 'dst'));
    await symlink(files.outside, join(files.local, 'dst', 'd'));
    const outsideBefore = await treeOf(files.outside);
    await syncFromRemote(client, 'src', join(files.local, 'dst'));
    assert.deepEqual(await treeOf(files.outside), outsideBefore, 'nothing written outside');
    assert.deepEqual(await treeOf(join(files.local, 'dst')), ['d', 'd/x.txt']);
  });

  test('pull: a server link that leads out (made on its disk) is refused', async () => {
    const { files, client } = suite;
    await mkdir(join(files.root, 'srv'));
    await symlink('../outside', join(files.root, 'srv', 'escape'));
    const result = await syncFromRemote(client, 'srv', join(files.local, 'srv'));
    assert.deepEqual(result.refused, [{ path: 'escape', target: '../outside' }]);
    assert.deepEqual(await readdir(join(files.local, 'srv')), []);
  });

  test('the server refuses a symlink request that leads out, whatever the client planned', async () => {
    const { files, client } = suite;
    await assert.rejects(
      client.call({ type: 'symlink', path: 'evil', target: '../outside' }),
      (error: Error & { code?: string }) => error.code === 'FORBIDDEN',
    );
    assert.ok(!(await treeOf(files.root)).includes('evil'));
  });
});

describe('sync: 10,000 small files', { timeout: 120_000 }, () => {
  test('first run sends all over one connection; a second run is one listing, no file read or sent', async () => {
    const counts = new Map<string, number>();
    const counting = (service: Service): Service => ({
      ...service,
      requests: Object.fromEntries(
        Object.entries(service.requests ?? {}).map(([type, handle]) => [
          type,
          (request: Parameters<typeof handle>[0]) => {
            counts.set(type, (counts.get(type) ?? 0) + 1);
            return handle(request);
          },
        ]),
      ),
    });
    const files = await startFiles({ wrap: counting, baseDir: '/dev/shm' });
    try {
      const client = await files.connect();
      const src = join(files.local, 'many');
      for (let d = 0; d < 20; d++) {
        await mkdir(join(src, `d${d}`), { recursive: true });
        await Promise.all(
          Array.from({ length: 500 }, (_, i) => writeFile(join(src, `d${d}`, `f${i}`), `file ${d}/${i}\n`)),
        );
      }
      const first = await syncToRemote(client, src, 'many');
      assert.equal(first.sent, 10_000);
      counts.clear();
      const again = await syncToRemote(client, src, 'many');
      assert.deepEqual([again.sent, again.bytes, again.skipped], [0, 0, 10_020]);
      assert.deepEqual(
        [...counts],
        [['list', 1]],
        'one listing: no put, get or stat (no file read on the server)',
      );

      const back = join(files.local, 'back');
      const pulled = await syncFromRemote(client, 'many', back);
      assert.equal(pulled.sent, 10_000);
      assert.equal((await treeOf(back)).length, 10_020);
      counts.clear();
      const unchanged = await syncFromRemote(client, 'many', back);
      assert.deepEqual([unchanged.sent, unchanged.bytes], [0, 0]);
      assert.deepEqual([...counts], [['list', 1]], 'pulling an unchanged tree: one listing too');
    } finally {
      await files.stop();
    }
  });
});

describe('sync batch requests', { timeout: 60_000 }, () => {
  const suite = filesAndClientPerSuite();

  test('put-batch with a digest that does not match publishes nothing of the batch', async () => {
    const { files, client } = suite;
    const good = await digestOf('xxh64', Buffer.from('good'));
    const batch = (second: string) => ({
      type: 'put-batch',
      path: 'b',
      checksum: 'xxh64',
      files: [
        { name: 'one', fileSize: 4, mode: 0o644, mtimeMs: 1e12, digest: good },
        { name: 'two', fileSize: 4, mode: 0o644, mtimeMs: 1e12, digest: second },
      ],
    });
    await assert.rejects(client.call(batch('0'.repeat(16)), Buffer.from('goodgood')), isCode('INTEGRITY'));
    assert.deepEqual(await treeOf(files.root), []);
    await client.call(batch(good), Buffer.from('goodgood'));
    assert.deepEqual(await treeOf(join(files.root, 'b')), ['one', 'two']);
  });

  test('get-batch sends the small files and skips what is not one (too large, a directory, missing)', async () => {
    const { files, client } = suite;
    await mkdir(join(files.root, 'g', 'sub'), { recursive: true });
    await writeFile(join(files.root, 'g', 'small'), 'small\n');
    await writeFile(join(files.root, 'g', 'large'), Buffer.alloc(BATCH_MAX_FILE_BYTES + 1));
    const reply = await client.call({
      type: 'get-batch',
      path: 'g',
      names: ['small', 'large', 'sub', 'gone'],
    });
    assert.deepEqual(
      (reply.header.files as { name: string }[]).map((file) => file.name),
      ['small'],
    );
    assert.deepEqual(reply.header.skipped, ['large', 'sub', 'gone']);
    assert.equal(reply.body.toString(), 'small\n');
    await assert.rejects(client.call({ type: 'get-batch', path: 'g', names: ['../x'] }), isCode('FORBIDDEN'));
  });
});

describe('sync globs and link targets', () => {
  test('* and ? stay in a segment, ** crosses, a bare pattern matches at any depth, / means directories', () => {
    const tmp = globMatcher('*.tmp');
    assert.ok(tmp('a.tmp') && tmp('sub/b.tmp'));
    assert.ok(!tmp('a.tmpx'));
    const build = globMatcher('build/**');
    assert.ok(build('build/x/y.o'));
    assert.ok(!build('src/build/x'), 'a pattern with / is anchored at the root');
    const one = globMatcher('src/?.c');
    assert.ok(one('src/a.c') && !one('src/ab.c') && !one('src/a/b.c'));
    assert.ok(globMatcher('a+b(1).txt')('a+b(1).txt'), 'regex characters are literal');
    const onlyC = filterRules([
      { action: 'include', pattern: '*/' },
      { action: 'include', pattern: '*.c' },
      { action: 'exclude', pattern: '*' },
    ]);
    assert.deepEqual(
      [onlyC('src', true), onlyC('src/a.c', false), onlyC('src/a.h', false), onlyC('c.c', true)],
      [false, false, true, false],
    );
  });

  test('link targets: inside, climbing out, absolute, and a climb after a name', () => {
    assert.ok(linkTargetInside(['a', 'b'], '../../x'));
    assert.ok(linkTargetInside([], 'x/y'));
    assert.ok(!linkTargetInside(['a'], '../../x'));
    assert.ok(!linkTargetInside([], '/etc/passwd'));
    assert.ok(!linkTargetInside(['a'], 'up/../../x'), 'a name then .. is refused: the name may be a link');
    assert.ok(!linkTargetInside([], '.sockit-part-1'));
  });
});
