import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { connect } from '../src/client/client.js';
import { SockitError } from '../src/errors.js';
import { serve } from '../src/server/server.js';
import { readTokenFile } from '../src/state.js';
import { runCli, TEST_TOKEN, tempDir } from './helpers.js';

/** Matches a USAGE error whose message matches `pattern`. */
function usage(pattern: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SockitError, String(error));
    assert.equal(error.code, 'USAGE');
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/, 'one line');
    return true;
  };
}

const isRoot = process.getuid?.() === 0;
const OTHER_UID = 4242;

/** A fresh state dir (mode 0700, ours) inside a temp dir; `token` written with `mode` when given. */
async function stateWith(
  mode?: number,
): Promise<{ dir: string; token: string; cleanup: () => Promise<void> }> {
  const base = await tempDir('sockit-state-check-');
  const dir = join(base.path, 'state');
  mkdirSync(dir, { mode: 0o700 });
  const token = join(dir, 'token');
  if (mode !== undefined) {
    writeFileSync(token, `${TEST_TOKEN}\n`, { mode });
    chmodSync(token, mode);
  }
  return { dir, token, cleanup: base.cleanup };
}

async function serveFrom(stateDir: string) {
  return serve({ listen: 'tcp://127.0.0.1:0', stateDir });
}

describe('the token file and state dir are checked as ssh checks its keys', () => {
  test('a private token in a private directory is used', async () => {
    const state = await stateWith(0o600);
    try {
      const server = await serveFrom(state.dir);
      try {
        const client = await connect(server.address, { stateDir: state.dir, env: {} });
        assert.equal(client.authenticated, true);
        await client.close();
      } finally {
        await server.close(100);
      }
    } finally {
      await state.cleanup();
    }
  });

  test('a token others can read is refused, with the chmod that fixes it', async () => {
    const state = await stateWith(0o644);
    try {
      await assert.rejects(
        serveFrom(state.dir),
        usage(/token file .*token has mode 0644: .*chmod 600 .*token$/),
      );
      assert.throws(() => readTokenFile(state.token), usage(/chmod 600/));
      chmodSync(state.token, 0o640);
      await assert.rejects(serveFrom(state.dir), usage(/mode 0640/));
    } finally {
      await state.cleanup();
    }
  });

  test('a group- or world-writable directory is refused, token or not', async () => {
    const state = await stateWith(0o600);
    try {
      chmodSync(state.dir, 0o777);
      await assert.rejects(
        serveFrom(state.dir),
        usage(/directory .*state has mode 0777: .*chmod go-w .*state$/),
      );
      chmodSync(state.dir, 0o770);
      assert.throws(() => readTokenFile(state.token), usage(/mode 0770/));
    } finally {
      await state.cleanup();
    }
    // No token yet: the server would create one in a directory others can write to.
    const empty = await stateWith();
    try {
      chmodSync(empty.dir, 0o757);
      await assert.rejects(serveFrom(empty.dir), usage(/mode 0757/));
    } finally {
      await empty.cleanup();
    }
  });

  test('a token that is a symlink is not followed, even to a private file of ours', async () => {
    const state = await stateWith();
    try {
      const real = join(state.dir, 'real-token');
      writeFileSync(real, `${TEST_TOKEN}\n`, { mode: 0o600 });
      symlinkSync(real, state.token);
      await assert.rejects(serveFrom(state.dir), usage(/token file .*token is a symlink/));
      assert.throws(() => readTokenFile(state.token), usage(/is a symlink/));
    } finally {
      await state.cleanup();
    }
  });

  test('a FIFO or a directory under the token name is refused without hanging', async () => {
    const state = await stateWith();
    try {
      execFileSync('mkfifo', ['-m', '600', state.token]);
      assert.throws(() => readTokenFile(state.token), usage(/is not a regular file/));
    } finally {
      await state.cleanup();
    }
  });

  test("someone else's token (their state dir, their file) is refused", async () => {
    const state = await stateWith(0o600);
    try {
      if (isRoot) {
        // The case: run as root with a state dir another user made (0755, their token).
        chownSync(state.token, OTHER_UID, OTHER_UID);
        await assert.rejects(
          serveFrom(state.dir),
          usage(new RegExp(`token file .* is owned by uid ${OTHER_UID}, not by you`)),
        );
        chownSync(state.token, 0, 0);
        chmodSync(state.dir, 0o755);
        chownSync(state.dir, OTHER_UID, OTHER_UID);
        await assert.rejects(
          serveFrom(state.dir),
          usage(new RegExp(`directory .* is owned by uid ${OTHER_UID}, not by you`)),
        );
      } else {
        // Not root: a file of root's is someone else's.
        const passwd = statSync('/etc/passwd');
        assert.notEqual(passwd.uid, process.getuid?.());
        assert.throws(() => readTokenFile('/etc/passwd'), usage(/is owned by uid 0, not by you/));
      }
    } finally {
      await state.cleanup();
    }
  });

  test('the server creates a missing state dir 0700 and its token 0600', async () => {
    const base = await tempDir('sockit-state-check-');
    try {
      const dir = join(base.path, 'new', 'state');
      const server = await serveFrom(dir);
      await server.close(100);
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(statSync(join(dir, 'token')).mode & 0o777, 0o600);
    } finally {
      await base.cleanup();
    }
  });

  test('the CLI refuses an unsafe token file in one line, exit 2: serve and a client', async () => {
    const state = await stateWith(0o644);
    try {
      const env = { SOCKIT_STATE_DIR: state.dir, HOME: state.dir };
      const served = await runCli(['serve', '127.0.0.1:0'], { env, timeoutMs: 20_000 });
      assert.equal(served.code, 2, served.stderr);
      assert.match(served.stderr, /^sockit: USAGE: token file .* has mode 0644: .*chmod 600 .*\n$/);
      const pinged = await runCli(['ping', '127.0.0.1:1', '--token-file', state.token], {
        env,
        timeoutMs: 20_000,
      });
      assert.equal(pinged.code, 2, pinged.stderr);
      assert.match(pinged.stderr, /^sockit: USAGE: token file .* has mode 0644: .*chmod 600 .*\n$/);
    } finally {
      await state.cleanup();
    }
  });
});
