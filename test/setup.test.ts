/** The hermetic setup (test/setup.ts) holds: temp HOME and state, and it fails leaky or escaping files. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, join, sep } from 'node:path';
import { describe, test } from 'node:test';
import { defaultStateDir } from '../src/state.js';
import { fixture, runTestFile, tempDir } from './helpers.js';
import { suite } from './setup.js';

const under = (path: string, dir: string): boolean => path.startsWith(dir + sep);

/** A home directory that looks used: `sockit serve` has left its token in ~/.local/state/sockit. */
async function usedHome(): Promise<{ home: string; token: string; cleanup: () => Promise<void> }> {
  const dir = await tempDir('sockit-used-home-');
  const stateDir = join(dir.path, '.local', 'state', 'sockit');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const token = join(stateDir, 'token');
  writeFileSync(token, 'the-users-real-token-0123456789\n', { mode: 0o600 });
  return { home: dir.path, token, cleanup: dir.cleanup };
}

describe('the suite is hermetic', () => {
  test('HOME, the XDG dirs, TMPDIR and the state dir are temp dirs of this file', () => {
    assert.ok(suite, 'test/setup.js is loaded');
    assert.match(basename(suite.root), /^sockit-suite-/);
    assert.ok(!under(suite.realStateDir, suite.root), `the real state dir ${suite.realStateDir} is outside`);
    assert.equal(homedir(), suite.home);
    assert.equal(tmpdir(), suite.tmp);
    assert.equal(defaultStateDir(), suite.stateDir);
    for (const name of [
      'HOME',
      'XDG_CONFIG_HOME',
      'XDG_STATE_HOME',
      'XDG_DATA_HOME',
      'XDG_CACHE_HOME',
      'TMPDIR',
    ]) {
      assert.ok(under(process.env[name]!, suite.root), `${name}=${process.env[name]} is under ${suite.root}`);
    }
    assert.equal(process.env.SOCKIT_TOKEN, undefined);
    assert.equal(statSync(suite.root).mode & 0o077, 0, 'the suite root is private');
  });

  test('a spawned CLI inherits them', async () => {
    const child = spawn(process.execPath, [
      '-e',
      'console.log(JSON.stringify([require("os").homedir(), process.env.SOCKIT_STATE_DIR]))',
    ]);
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk;
    });
    await new Promise((resolve) => child.once('close', resolve));
    assert.deepEqual(JSON.parse(text), [suite!.home, suite!.stateDir]);
  });

  test('with a token in the real state dir, a CLI serve uses its own and the real one is untouched', async () => {
    const home = await usedHome();
    try {
      const before = { text: readFileSync(home.token, 'utf8'), mtime: statSync(home.token).mtimeMs };
      const run = await runTestFile(fixture('hermetic.fixture.js'), { HOME: home.home });
      assert.equal(run.code, 0, run.output);
      assert.equal(readFileSync(home.token, 'utf8'), before.text);
      assert.equal(statSync(home.token).mtimeMs, before.mtime);
    } finally {
      await home.cleanup();
    }
  });

  test('a file that writes into the real state dir fails, naming the change', async () => {
    const home = await usedHome();
    try {
      const run = await runTestFile(fixture('writes-real-state.fixture.js'), { HOME: home.home });
      assert.notEqual(run.code, 0, run.output);
      assert.match(run.output, /hermetic check: .*writes-real-state\.fixture\.js changed the real state dir/);
      assert.match(run.output, /token: file/);
    } finally {
      await home.cleanup();
    }
  });
});

describe('the leak check', () => {
  test('a file that leaves a server open fails within the grace period, naming the server', async () => {
    const home = await usedHome();
    try {
      const run = await runTestFile(fixture('leaks-a-server.fixture.js'), {
        HOME: home.home,
        SOCKIT_TEST_LEAK_GRACE_MS: '500',
      });
      assert.notEqual(run.code, 0, run.output);
      assert.match(
        run.output,
        /leak check: .*leaks-a-server\.fixture\.js left open after its tests: TCPServerWrap ×1/,
      );
      assert.match(run.output, /Server \{"address":"127\.0\.0\.1"/);
      assert.ok(run.ms < 30_000, `failed after ${run.ms} ms instead of hanging`);
    } finally {
      await home.cleanup();
    }
  });
});
