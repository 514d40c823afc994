import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, TEST_TOKEN } from '../helpers.js';
import {
  checksumFile,
  type FilesFixture,
  sha256File,
  startFiles,
  treeOf,
  writeRandomFile,
} from './fixtures.js';

const env = { SOCKIT_TOKEN: TEST_TOKEN };

function events(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('sockit put / get / ls / rm', () => {
  let files: FilesFixture;
  let shaA: string;

  before(async () => {
    files = await startFiles();
    shaA = await writeRandomFile(join(files.local, 'a.bin'), 2 * 1024 * 1024 + 5);
    await writeFile(join(files.local, 'b.txt'), 'bee\n');
    await mkdir(join(files.local, 'tree', 'sub', 'deeper'), { recursive: true });
    await writeFile(join(files.local, 'tree', 'top.txt'), 'top\n');
    await writeFile(join(files.local, 'tree', 'sub', 'ünï cödé.txt'), 'unicode\n');
    await writeFile(join(files.local, 'tree', 'sub', 'deeper', 'empty'), '');
  });

  after(async () => {
    await files.stop();
  });

  test('put several files into a directory; piped output is one line per file, no bar', async () => {
    const result = await runCli(
      [
        'put',
        '--checksum',
        'sha256',
        join(files.local, 'a.bin'),
        join(files.local, 'b.txt'),
        files.address,
        'inbox/',
      ],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, new RegExp(`^put .*a\\.bin -> inbox/a\\.bin \\(2\\.00 MiB\\) sha256 ${shaA}$`));
    assert.match(lines[1]!, /^put .*b\.txt -> inbox\/b\.txt \(4 B\) sha256 [0-9a-f]{64}$/);
    assert.equal(await sha256File(join(files.root, 'inbox', 'a.bin')), shaA);
  });

  test('put -r a directory, ls -r, get -r it back: same tree, same bytes', async () => {
    let connections = 0;
    const count = (): void => {
      connections++;
    };
    files.server.on('connection', count);
    const put = await runCli(['put', '-r', '--quiet', join(files.local, 'tree'), files.address, 'backup/'], {
      env,
    });
    files.server.off('connection', count);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(connections, 1, 'every file went over one connection');
    assert.equal(put.stdout + put.stderr, '', '--quiet prints nothing');
    const ls = await runCli(['ls', '-r', files.address, 'backup'], { env });
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(
      ls.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(/\s{2,}/).at(-1)),
      [
        'backup/tree/',
        'backup/tree/sub/',
        'backup/tree/sub/deeper/',
        'backup/tree/sub/deeper/empty',
        'backup/tree/sub/ünï cödé.txt',
        'backup/tree/top.txt',
      ],
    );
    assert.match(ls.stdout, /^drwxr-xr-x/);
    const json = await runCli(['ls', '--json', files.address, 'backup/tree'], { env });
    const entries = JSON.parse(json.stdout) as { path: string; kind: string; size: number }[];
    assert.deepEqual(
      entries.map((entry) => [entry.path, entry.kind]),
      [
        ['backup/tree/sub', 'dir'],
        ['backup/tree/top.txt', 'file'],
      ],
    );
    const restored = join(files.local, 'restored');
    const get = await runCli(['get', '-r', files.address, 'backup/tree', restored], { env });
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await treeOf(restored), await treeOf(join(files.local, 'tree')));
    assert.equal(await readFile(join(restored, 'sub', 'ünï cödé.txt'), 'utf8'), 'unicode\n');
  });

  test('--json progress events for scripts', async () => {
    const result = await runCli(['put', '--json', join(files.local, 'a.bin'), files.address, 'json.bin'], {
      env,
    });
    assert.equal(result.code, 0, result.stderr);
    const list = events(result.stdout);
    assert.deepEqual(list[0], { event: 'start', files: 1, bytes: 2 * 1024 * 1024 + 5 });
    assert.equal(list[1]!.event, 'file');
    const progress = list.filter((event) => event.event === 'progress');
    assert.ok(progress.length >= 1);
    assert.equal(progress.at(-1)!.bytes, 2 * 1024 * 1024 + 5);
    const done = list.find((event) => event.event === 'done')!;
    assert.equal(done.checksum, 'xxh64', 'the default is the fastest checksum both ends have');
    assert.equal(done.digest, await checksumFile(join(files.local, 'a.bin'), 'xxh64'));
    const badChecksum = await runCli(
      ['put', '--checksum', 'crc7', join(files.local, 'a.bin'), files.address, 'json2.bin'],
      { env },
    );
    assert.equal(badChecksum.code, 2, badChecksum.stderr);
    assert.match(badChecksum.stderr, /--checksum must be one of xxh64, sha256/);
    assert.equal(done.remotePath, 'json.bin');
    assert.equal(list.at(-1)!.event, 'end');
    assert.equal(list.at(-1)!.ok, true);

    const failed = await runCli(['put', '--json', join(files.local, 'a.bin'), files.address, 'json.bin'], {
      env,
    });
    assert.equal(failed.code, 1);
    const end = events(failed.stdout).at(-1)!;
    assert.equal(end.ok, false);
    assert.deepEqual((end.error as { code: string }).code, 'CONFLICT');
    assert.match(failed.stderr, /CONFLICT: json\.bin already exists: pass overwrite/);
  });

  test('get a file into an existing directory, CONFLICT on a second get, --overwrite replaces', async () => {
    const into = join(files.local, 'downloads');
    await mkdir(into);
    const first = await runCli(['get', files.address, 'inbox/a.bin', into], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(await sha256File(join(into, 'a.bin')), shaA);
    const second = await runCli(['get', files.address, 'inbox/a.bin', into], { env });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /CONFLICT: .*a\.bin already exists: pass --overwrite/);
    const third = await runCli(
      ['get', '--overwrite', files.address, 'inbox/a.bin', join(into, 'renamed.bin')],
      { env },
    );
    assert.equal(third.code, 0, third.stderr);
    assert.deepEqual(await treeOf(into), ['a.bin', 'renamed.bin']);
  });

  test('usage errors exit 2 with a message', async () => {
    const tooFew = await runCli(['put', join(files.local, 'a.bin'), files.address], { env });
    assert.equal(tooFew.code, 2);
    assert.match(tooFew.stderr, /put needs LOCAL… ADDRESS REMOTE/);
    const dir = await runCli(['put', join(files.local, 'tree'), files.address, 'x/'], { env });
    assert.equal(dir.code, 2);
    assert.match(dir.stderr, /is a directory: use -r/);
    const remoteDir = await runCli(['get', files.address, 'backup', join(files.local, 'x')], { env });
    assert.equal(remoteDir.code, 2);
    assert.match(remoteDir.stderr, /is a directory: use -r/);
    const outside = await runCli(['get', files.address, '../etc/passwd', join(files.local, 'x')], { env });
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /FORBIDDEN/);
  });

  test('rm a file, rm -r a tree; a missing path is NOT_FOUND', async () => {
    const one = await runCli(['rm', files.address, 'inbox/b.txt'], { env });
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, 'removed inbox/b.txt\n');
    const notEmpty = await runCli(['rm', files.address, 'backup'], { env });
    assert.equal(notEmpty.code, 1);
    assert.match(notEmpty.stderr, /CONFLICT: .*not empty/);
    const tree = await runCli(['rm', '-r', files.address, 'backup'], { env });
    assert.equal(tree.code, 0, tree.stderr);
    assert.equal(tree.stdout, 'removed backup (7 entries)\n');
    const missing = await runCli(['rm', files.address, 'backup'], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND/);
    assert.deepEqual(await treeOf(join(files.root)), ['inbox', 'inbox/a.bin', 'json.bin']);
  });
});
