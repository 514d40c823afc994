import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { splitRemote } from '../../src/cli/commands/sync.js';
import { type FilesFixture, sha256File, startFiles, treeOf } from '../files/fixtures.js';
import { runCli, TEST_TOKEN } from '../helpers.js';

const env = { SOCKIT_TOKEN: TEST_TOKEN };

describe('sockit sync LOCAL ADDR:PATH', { timeout: 60_000 }, () => {
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

  test('ADDR:PATH splits after the port', () => {
    assert.deepEqual(splitRemote('127.0.0.1:7070:dir/x'), { address: '127.0.0.1:7070', path: 'dir/x' });
    assert.deepEqual(splitRemote('tls://[::1]:7070:a:b'), { address: 'tls://[::1]:7070', path: 'a:b' });
    assert.equal(splitRemote('./local/dir'), undefined);
  });

  test('--dry-run lists and changes nothing; a real run sends; a second run sends nothing (--json)', async () => {
    const dest = `${files.address}:mirror`;
    const dry = await runCli(['sync', '--dry-run', join(files.local, 'src'), dest], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^send a\.txt\nsend sub\/b\.txt\nsent 0, skipped 0, deleted 0, 0 B in .* \(dry run/,
    );
    assert.deepEqual(await treeOf(files.root), []);

    const run = await runCli(['sync', join(files.local, 'src'), dest], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /sent 2, skipped 0, deleted 0, 12 B/);
    assert.equal(
      await sha256File(join(files.root, 'mirror', 'sub', 'b.txt')),
      await sha256File(join(files.local, 'src', 'sub', 'b.txt')),
    );

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
    assert.equal(events[0]!.sent, 0);
    assert.equal(events[0]!.skipped, 2);
  });

  test('bad usage is exit 2, server → local not built yet is exit 1', async () => {
    const usage = await runCli(['sync', join(files.local, 'src'), 'no-remote'], { env });
    assert.equal(usage.code, 2, usage.stderr);
    const back = await runCli(['sync', `${files.address}:mirror`, join(files.local, 'back')], { env });
    assert.equal(back.code, 1, back.stderr);
    assert.match(back.stderr, /UNSUPPORTED|not built yet/);
  });
});
