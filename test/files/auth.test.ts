import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/client/client.js';
import { runCli, tempDir } from '../helpers.js';
import { type FilesFixture, isCode, startFiles, treeOf } from './fixtures.js';

describe('files need authentication', () => {
  let files: FilesFixture;
  let openFiles: FilesFixture;
  let noToken: string;

  before(async () => {
    files = await startFiles();
    // Even an operator who lists files as open does not open them: only --insecure-no-auth does.
    openFiles = await startFiles({ serve: { openServices: ['echo', 'files'] } });
    noToken = (await tempDir('sockit-no-token-')).path;
    for (const fixture of [files, openFiles]) {
      await writeFile(join(fixture.root, 'private.txt'), 'private\n');
      await writeFile(join(fixture.local, 'upload.txt'), 'upload\n');
    }
  });

  after(async () => {
    await files.stop();
    await openFiles.stop();
    await rm(noToken, { recursive: true, force: true });
  });

  for (const [name, fixture] of [
    ['by default', () => files],
    ['even when listed in openServices', () => openFiles],
  ] as const) {
    test(`an unauthenticated client can do nothing (${name})`, async () => {
      const target = fixture();
      const client = await connect(target.address, { stateDir: noToken, env: {} });
      try {
        assert.equal(client.authenticated, false);
        await assert.rejects(
          client.put(join(target.local, 'upload.txt'), 'upload.txt'),
          isCode('AUTH_REQUIRED'),
        );
        await assert.rejects(
          client.get('private.txt', join(target.local, 'stolen.txt')),
          isCode('AUTH_REQUIRED'),
        );
        await assert.rejects(client.list(''), isCode('AUTH_REQUIRED'));
        await assert.rejects(client.stat('private.txt', { sha256: true }), isCode('AUTH_REQUIRED'));
        await assert.rejects(client.delete('private.txt'), isCode('AUTH_REQUIRED'));
        assert.deepEqual(await treeOf(target.root), ['private.txt']);
        assert.deepEqual(await treeOf(target.local), ['upload.txt']);
      } finally {
        client.destroy();
      }
    });
  }

  test('a wrong token is refused at connect', async () => {
    await assert.rejects(files.connect({ token: 'wrong-token' }), isCode('AUTH_FAILED'));
  });

  test('CLI: a wrong token exits 5, no token exits 5; nothing is touched', async () => {
    const wrong = await runCli(['ls', files.address, '--state-dir', noToken], {
      env: { SOCKIT_TOKEN: 'wrong' },
    });
    assert.equal(wrong.code, 5);
    assert.match(wrong.stderr, /AUTH_FAILED/);
    const none = await runCli(['rm', files.address, 'private.txt', '--state-dir', noToken]);
    assert.equal(none.code, 5);
    assert.match(none.stderr, /AUTH_REQUIRED.*token/);
    assert.deepEqual(await treeOf(files.root), ['private.txt']);
  });

  test('CLI: serve refuses --open files', async () => {
    const result = await runCli([
      'serve',
      'tcp://127.0.0.1:0',
      '--files',
      files.root,
      '--open',
      'echo,files',
      '--state-dir',
      noToken,
    ]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--open files.*needs the token/);
  });

  test('with --insecure-no-auth the operator opens files to everyone, on purpose', async () => {
    const open = await startFiles({ serve: { insecureNoAuth: true, token: undefined } });
    try {
      const client = await connect(open.address, { stateDir: noToken, env: {} });
      await writeFile(join(open.local, 'a.txt'), 'a\n');
      await client.put(join(open.local, 'a.txt'), 'a.txt');
      assert.deepEqual(await treeOf(open.root), ['a.txt']);
      client.destroy();
    } finally {
      await open.stop();
    }
  });
});
