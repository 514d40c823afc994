import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { splitRemote } from '../../src/cli/commands/sync.js';
import { createSyncBar } from '../../src/cli/progress.js';
import { type FilesFixture, startFiles, treeOf } from '../files/fixtures.js';
import { CLI, runCli, spawnForFile, TEST_TOKEN, waitForLine } from '../helpers.js';
import { assertSameTree, treeState } from './tree.js';

const env = { SOCKIT_TOKEN: TEST_TOKEN };

describe('sockit sync SRC DEST', { timeout: 60_000 }, () => {
  let files: FilesFixture;

  before(async () => {
    files = await startFiles();
    await mkdir(join(files.local, 'src', 'sub'), { recursive: true });
    await writeFile(join(files.local, 'src', 'a.txt'), 'alpha\n');
    await writeFile(join(files.local, 'src', 'sub', 'b.txt'), 'bravo\n');
  });

  after(async () => {
    await files.stop();
  });

  test('the progress bar is drawn on a terminal only, counting files and bytes', () => {
    assert.equal(createSyncBar(Object.assign(new PassThrough(), { isTTY: false }) as never), undefined);
    const terminal = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
    let drawn = '';
    terminal.on('data', (chunk: Buffer) => {
      drawn += chunk.toString();
    });
    const bar = createSyncBar(terminal as never)!;
    bar.update({ files: 3, bytes: 3072, totalFiles: 4, totalBytes: 4096 });
    bar.stop();
    assert.match(drawn, /3\/4 files \| 3\.00 KiB \/ 4\.00 KiB/);
  });

  test('ADDR:PATH splits after the port', () => {
    assert.deepEqual(splitRemote('127.0.0.1:7070:dir/x'), { address: '127.0.0.1:7070', path: 'dir/x' });
    assert.deepEqual(splitRemote('tls://[::1]:7070:a:b'), { address: 'tls://[::1]:7070', path: 'a:b' });
    assert.equal(splitRemote('./local/dir'), undefined);
    // ALIAS:PATH only for an alias of the config file; any other NAME:x stays a local path.
    const aliases = new Map([
      ['box', {}],
      ['*', {}],
    ]);
    assert.deepEqual(splitRemote('box:dir/x', aliases), { address: 'box', path: 'dir/x' });
    assert.equal(splitRemote('other:dir', aliases), undefined);
    assert.equal(splitRemote('*:dir', aliases), undefined);
  });

  test('ALIAS:PATH names a server of the client config file (-F)', async () => {
    const config = join(files.local, 'config');
    await writeFile(config, `[box]\naddress = ${files.address}\n`);
    const run = await runCli(['sync', '-F', config, join(files.local, 'src'), 'box:aliased'], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^sent 2, skipped 0, deleted 0/);
    await assertSameTree(join(files.root, 'aliased'), join(files.local, 'src'));
    // The next tests start from an empty root.
    await rm(join(files.root, 'aliased'), { recursive: true });
  });

  test('push: --dry-run lists and changes nothing; a run sends; a second run sends nothing (--json)', async () => {
    const dest = `${files.address}:mirror`;
    const dry = await runCli(['sync', '--dry-run', join(files.local, 'src'), dest], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^mkdir sub\nsend a\.txt\nsend sub\/b\.txt\nsent 0, skipped 0, deleted 0, 0 B in .* \(dry run/,
    );
    assert.deepEqual(await treeOf(files.root), []);

    const run = await runCli(['sync', join(files.local, 'src'), dest], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^sent 2, skipped 0, deleted 0, 12 B in/, 'a real run prints only its summary');
    await assertSameTree(join(files.root, 'mirror'), join(files.local, 'src'));

    const again = await runCli(['sync', '--json', join(files.local, 'src'), dest], { env });
    assert.equal(again.code, 0, again.stderr);
    const events = again.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => e.event),
      ['summary'],
    );
    assert.deepEqual([events[0]!.sent, events[0]!.skipped, events[0]!.bytes], [0, 3, 0]);
  });

  test('pull: ADDR:PATH → a local directory, with --delete and --exclude', async () => {
    await mkdir(join(files.root, 'pub', 'docs'), { recursive: true });
    await writeFile(join(files.root, 'pub', 'docs', 'r.md'), '# read me\n');
    await writeFile(join(files.root, 'pub', 'skip.log'), 'noise\n');
    const target = join(files.local, 'pulled');
    await mkdir(target);
    await writeFile(join(target, 'stale.txt'), 'gone after --delete\n');
    const run = await runCli(
      ['sync', '-v', '--delete', '--exclude', '*.log', `${files.address}:pub`, target],
      { env },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^mkdir docs\nsend docs\/r\.md\ndelete stale\.txt\nsent 1, skipped 0, deleted 1/,
    );
    assert.deepEqual(await treeOf(target), ['docs', 'docs/r.md']);
  });

  test('usage: local to local and remote to remote are exit 2; a missing remote source is exit 1', async () => {
    const local = await runCli(['sync', join(files.local, 'src'), join(files.local, 'copy')], { env });
    assert.equal(local.code, 2, local.stderr);
    assert.match(local.stderr, /local to local is not supported/);
    const remote = await runCli(['sync', `${files.address}:a`, `${files.address}:b`], { env });
    assert.equal(remote.code, 2, remote.stderr);
    const missing = await runCli(['sync', `${files.address}:no-such-dir`, join(files.local, 'x')], { env });
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /NOT_FOUND/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
  });

  test('a sync killed midway is completed by running it again', async () => {
    const src = join(files.local, 'big');
    for (let d = 0; d < 20; d++) {
      await mkdir(join(src, `d${d}`), { recursive: true });
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          writeFile(join(src, `d${d}`, `f${i}`), `${d}/${i}\n`.repeat(2000)),
        ),
      );
    }
    const args = ['sync', '--json', '--concurrency', '1', src, `${files.address}:big`];
    const child = spawnForFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    const closed = new Promise((resolve) => child.once('close', resolve));
    // Killed as soon as the first file is reported done: the rest is still to come.
    await waitForLine(child.stdout, /"event":"send"/);
    child.kill('SIGKILL');
    await closed;
    const partial = await treeState(join(files.root, 'big'));
    assert.ok(Object.keys(partial).length < 820, 'the kill left the sync unfinished');
    const rerun = await runCli(['sync', src, `${files.address}:big`], { env });
    assert.equal(rerun.code, 0, rerun.stderr);
    await assertSameTree(join(files.root, 'big'), src);
  });
});
