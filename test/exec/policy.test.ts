import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, realpath } from 'node:fs/promises';
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

for (const spawner of ['native', 'node'] as const) {
  describe(`exec policy: --exec-cwd-root holds the directory it checked (${spawner} spawner)`, () => {
    test('a directory swapped for a symlink to / during the runs: no command starts outside the root', async (t) => {
      const dir = await tempDir('sockit-exec-swap-');
      const root = join(await realpath(dir.path), 'root');
      const work = join(root, 'work');
      await mkdir(work, { recursive: true });
      const auditFile = join(dir.path, 'audit.jsonl');
      const env = await startExec({ cwdRoots: [root], spawner, auditFile });
      // Swaps root/work between the real directory and a symlink to / as fast as it can.
      const swapper = spawn(
        process.execPath,
        [
          '-e',
          `const fs = require('node:fs');
           const [work, away] = process.argv.slice(1);
           process.stdout.write('go\\n');
           for (;;) {
             fs.renameSync(work, away);
             fs.symlinkSync('/', work);
             fs.unlinkSync(work);
             fs.renameSync(away, work);
           }`,
          work,
          `${work}.away`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const swapperExit = once(swapper, 'exit');
      try {
        await once(swapper.stdout, 'data');
        const outcomes: Record<string, number> = {};
        const outside: string[] = [];
        // Until 20 runs ran (or 600 tries): a real race, many refused, none outside.
        for (let run = 0; run < 600 && (outcomes.ran ?? 0) < 20; run++) {
          try {
            const ran = await env.client.exec(['pwd'], { cwd: 'work' });
            const cwd = ran.stdout.toString().trim();
            if (!cwd.startsWith(`${root}/`)) outside.push(cwd);
            outcomes.ran = (outcomes.ran ?? 0) + 1;
          } catch (error) {
            const code = (error as SockitError).code;
            outcomes[code] = (outcomes[code] ?? 0) + 1;
          }
        }
        t.diagnostic(`${spawner}: ${JSON.stringify(outcomes)}`);
        assert.deepEqual(outside, [], `runs started outside ${root}`);
        assert.ok((outcomes.ran ?? 0) > 0, `some runs ran: ${JSON.stringify(outcomes)}`);
        for (const code of Object.keys(outcomes))
          assert.ok(['ran', 'FORBIDDEN', 'NOT_FOUND'].includes(code), code);
      } finally {
        swapper.kill('SIGKILL');
        await swapperExit;
        await env.stop();
      }
      // The audit log records where each run really started: the held directory's real path.
      const entries = (await readFile(auditFile, 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line))
        .filter((entry) => entry.outcome === 'exit');
      assert.ok(entries.length > 0);
      for (const entry of entries) assert.ok(entry.cwd.startsWith(root), entry.cwd);
      await dir.cleanup();
    });
  });
}

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
