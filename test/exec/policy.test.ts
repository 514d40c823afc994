import assert from 'node:assert/strict';
import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SockitError } from '../../src/errors.js';
import { execService } from '../../src/services/exec/index.js';
import { tempDir } from '../helpers.js';
import { startExec } from './helpers.js';

describe('exec policy: allow-list', () => {
  let env: Awaited<ReturnType<typeof startExec>>;
  before(async () => {
    env = await startExec({ allow: ['echo', 'printenv', '/bin/sh'] });
  });
  after(() => env.stop());

  test('programs on the list run', async () => {
    assert.equal((await env.client.exec(['echo', 'ok'])).stdout.toString(), 'ok\n');
    assert.equal((await env.client.exec(['/bin/sh', '-c', 'exit 7'])).code, 7);
  });

  test('a program not on the list is FORBIDDEN, and the error names the list', async () => {
    await assert.rejects(env.client.exec(['ls']), (error: SockitError) => {
      assert.equal(error.code, 'FORBIDDEN');
      assert.match(error.message, /"ls" is not on this server's allow-list \(echo, printenv, \/bin\/sh\)/);
      return true;
    });
  });

  test('the list matches argv[0] exactly: no path tricks', async () => {
    for (const program of ['/bin/echo', './echo', 'echo ', 'sh', '/usr/bin/../../bin/sh']) {
      await assert.rejects(env.client.exec([program]), { code: 'FORBIDDEN' }, program);
    }
  });

  test('with a list, requests may not set PATH or LD_PRELOAD (that would escape it)', async () => {
    for (const name of ['PATH', 'LD_PRELOAD', 'BASH_ENV']) {
      await assert.rejects(env.client.exec(['echo'], { env: { [name]: '/tmp' } }), (error: SockitError) => {
        assert.equal(error.code, 'FORBIDDEN');
        assert.match(error.message, new RegExp(name));
        return true;
      });
    }
  });

  test('with a list, locale variables are still allowed', async () => {
    const result = await env.client.exec(['printenv', 'LC_ALL'], { env: { LC_ALL: 'C' } });
    assert.equal(result.stdout.toString(), 'C\n');
  });
});

describe('exec policy: working directories', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: Awaited<ReturnType<typeof startExec>>;
  let root: string;
  before(async () => {
    dir = await tempDir('sockit-exec-cwd-');
    root = join(await realpath(dir.path), 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    env = await startExec({ cwdRoots: [root] });
  });
  after(async () => {
    await env.stop();
    await dir.cleanup();
  });

  test('the default directory is the first root; relative paths resolve inside it', async () => {
    assert.equal((await env.client.exec(['pwd'])).stdout.toString(), `${root}\n`);
    assert.equal(
      (await env.client.exec(['pwd'], { cwd: 'sub' })).stdout.toString(),
      `${join(root, 'sub')}\n`,
    );
  });

  test('a directory outside the roots is FORBIDDEN', async () => {
    await assert.rejects(env.client.exec(['pwd'], { cwd: '..' }), { code: 'FORBIDDEN' });
    await assert.rejects(env.client.exec(['pwd'], { cwd: '/' }), { code: 'FORBIDDEN' });
  });
});

describe('exec policy: limits', () => {
  test('past the server-wide cap on running commands, BUSY', async () => {
    const env = await startExec({ maxRunning: 1 });
    const other = await env.connect();
    try {
      const holder = env.client.spawn(['cat']);
      await holder.started;
      holder.stdout.resume();
      // The cap is server-wide: another connection is refused too.
      await assert.rejects(other.exec(['true']), (error: SockitError) => {
        assert.equal(error.code, 'BUSY');
        assert.match(error.message, /maximum of 1/);
        return true;
      });
      await assert.rejects(env.client.exec(['true']), { code: 'BUSY' });
      holder.stdin!.end();
      assert.equal((await holder.exited).code, 0);
      assert.equal((await other.exec(['true'])).code, 0);
      assert.equal(env.service.running, 0);
    } finally {
      other.destroy();
      await env.stop();
    }
  });

  test('a request timeout above the server maximum is capped to it', async () => {
    const env = await startExec({ maxTimeoutMs: 300 });
    try {
      const result = await env.client.exec(['sleep', '30'], { timeoutMs: 60_000 });
      assert.equal(result.timedOut, true);
      assert.equal(result.signal, 'SIGKILL');
    } finally {
      await env.stop();
    }
  });
});

describe('exec options are checked', () => {
  test('conflicting or bad options are TypeErrors that name them', () => {
    assert.throws(() => execService({ allow: ['ls'], allowShell: true }), /allowShell and allow/);
    assert.throws(() => execService({ allow: [] }), /empty/);
    assert.throws(() => execService({ allow: ['bin/ls'] }), /bare name or an absolute path/);
    assert.throws(() => execService({ allow: 'everything' as 'any' }), /allow/);
    assert.throws(() => execService({ allow: 'any', maxRunning: 0 }), /maxRunning/);
    assert.throws(() => execService({ allow: 'any', maxOutputBytes: -1 }), /maxOutputBytes/);
  });
});
