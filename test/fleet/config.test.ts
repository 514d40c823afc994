/** The client config file: aliases with address, token file, fingerprint and keepalive; -F and --no-config. */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startExec } from '../exec/helpers.js';
import { runCli, TEST_TOKEN, tempDir } from '../helpers.js';

describe('client config file', { timeout: 60_000 }, () => {
  let exec: Awaited<ReturnType<typeof startExec>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    exec = await startExec({ allow: ['uname'] });
    dir = await tempDir('sockit-config-');
    await mkdir(join(dir.path, 'xdg', 'sockit'), { recursive: true });
    await writeFile(join(dir.path, 'xdg', 'sockit', 'token'), `${TEST_TOKEN}\n`, { mode: 0o600 });
    await writeFile(
      join(dir.path, 'xdg', 'sockit', 'config'),
      [
        '# test config',
        '[*]',
        'token-file = token          # relative to this file',
        '',
        '[web1]',
        `address = ${exec.address}`,
        'keepalive = 1s',
        'keepalive-count = 2',
        '',
      ].join('\n'),
    );
    // No SOCKIT_TOKEN and an empty state dir: the token can only come from the config.
    env = {
      SOCKIT_TOKEN: '',
      SOCKIT_STATE_DIR: join(dir.path, 'state'),
      HOME: dir.path,
      XDG_CONFIG_HOME: join(dir.path, 'xdg'),
    };
  });
  after(async () => {
    await exec.stop();
    await dir.cleanup();
  });

  test('an alias brings its address and settings; [*] applies to every host', async () => {
    const result = await runCli(['exec', 'web1', '--', 'uname', '-s'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'Linux\n');
    // A plain address still gets [*]'s token file.
    const plain = await runCli(['exec', exec.address, '--', 'uname', '-s'], { env });
    assert.equal(plain.code, 0, plain.stderr);
  });

  test('the other client commands take an alias too (ping)', async () => {
    const ping = await runCli(['ping', '-c', '1', 'web1'], { env });
    assert.equal(ping.code, 0, ping.stderr);
  });

  test('fingerprint pins a tls:// alias: the right one connects, a wrong one is exit 6 (exec: 255) in one line', async () => {
    const tls = await startExec({ allow: ['uname'] }, { transport: 'tls' });
    try {
      const right = tls.server.tlsFingerprint!;
      const wrong = right.replace(/^../, right.startsWith('00') ? '11' : '00');
      const file = join(dir.path, 'pinned');
      await writeFile(
        file,
        [
          '[*]',
          `token-file = ${join(dir.path, 'xdg', 'sockit', 'token')}`,
          '[right]',
          `address = ${tls.address}`,
          // Written as the server prints it, in lower case: the pin is compared normalised.
          `fingerprint = ${right.toLowerCase()}`,
          '[wrong]',
          `address = ${tls.address}`,
          `fingerprint = ${wrong}`,
          '',
        ].join('\n'),
      );
      const ok = await runCli(['exec', '-F', file, 'right', '--', 'uname', '-s'], { env });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, 'Linux\n');
      assert.equal(ok.stderr, '', 'a pin that matches is silent (nothing pinned on first use)');
      const refused = new RegExp(
        `^sockit: TLS_FINGERPRINT_CHANGED: the TLS certificate of 127\\.0\\.0\\.1:\\d+ has fingerprint ${right}, not the expected ${wrong}\n$`,
      );
      const ping = await runCli(['ping', '-F', file, 'wrong'], { env });
      assert.equal(ping.code, 6, ping.stderr);
      assert.match(ping.stderr, refused);
      const exec = await runCli(['exec', '-F', file, 'wrong', '--', 'uname', '-s'], { env });
      assert.equal(exec.code, 255, exec.stderr);
      assert.match(exec.stderr, refused);
      assert.equal(exec.stdout, '');
    } finally {
      await tls.stop();
    }
  });

  test('aliases work in a --hosts inventory', async () => {
    const hosts = join(dir.path, 'hosts');
    await writeFile(hosts, 'web1\nagain = web1\n');
    const result = await runCli(['exec', '--hosts', hosts, '--json', '--', 'uname', '-s'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      result.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).stdout),
      ['Linux\n', 'Linux\n'],
    );
  });

  test('--no-config ignores the file; -F names another; a missing -F file or a bad line is a usage error', async () => {
    const ignored = await runCli(['exec', '--no-config', exec.address, '--', 'uname'], { env });
    assert.equal(ignored.code, 255);
    assert.match(ignored.stderr, /AUTH_REQUIRED|auth/i);
    const other = join(dir.path, 'other');
    await writeFile(
      other,
      `[db]\naddress = ${exec.address}\ntoken-file = ${join(dir.path, 'xdg', 'sockit', 'token')}\n`,
    );
    const named = await runCli(['exec', '-F', other, 'db', '--', 'uname', '-s'], { env });
    assert.equal(named.code, 0, named.stderr);
    const missing = await runCli(['exec', '-F', join(dir.path, 'nope'), 'db', '--', 'uname'], { env });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /config file .*nope: ENOENT/);
    const bad = join(dir.path, 'bad');
    await writeFile(bad, '[x]\ncolour = blue\n');
    const badLine = await runCli(['exec', '-F', bad, 'x', '--', 'uname'], { env });
    assert.equal(badLine.code, 2);
    assert.match(badLine.stderr, /bad:2: unknown setting "colour"/);
  });
});
