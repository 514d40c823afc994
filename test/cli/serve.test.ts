import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, runCli, tempDir, waitForLine } from '../helpers.js';

describe('sockit serve / ping / echo (spawned CLI)', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let server: ChildProcessWithoutNullStreams;
  let tcp: string;
  let tls: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    state = await tempDir();
    env = { SOCKIT_STATE_DIR: state.path };
    server = spawn(
      process.execPath,
      [CLI, 'serve', 'tcp://127.0.0.1:0', 'tls://127.0.0.1:0', '--echo', 'upper'],
      {
        env: { ...process.env, ...env, SOCKIT_TOKEN: '' },
      },
    );
    const addresses: string[] = [];
    await new Promise<void>((resolve, reject) => {
      let text = '';
      server.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        for (const match of text.matchAll(/^ {2}((?:tcp|tls):\/\/\S+)$/gm)) {
          if (!addresses.includes(match[1]!)) addresses.push(match[1]!);
        }
        if (/^Try:/m.test(text)) resolve();
      });
      server.once('exit', (code) => reject(new Error(`serve exited early with ${code}`)));
    });
    [tcp, tls] = addresses as [string, string];
  });

  after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
    await state.cleanup();
  });

  test('the banner names the token file, and the token file is private', () => {
    const token = readFileSync(join(state.path, 'token'), 'utf8').trim();
    assert.ok(token.length >= 20);
    assert.equal(statSync(join(state.path, 'token')).mode & 0o777, 0o600);
  });

  test('ping reaches the server and reports the services', async () => {
    const result = await runCli(['ping', tcp, '-c', '2'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.match(/^pong from/gm)?.length, 2);
    assert.match(result.stdout, /services: echo; authenticated/);
  });

  test('ping --json prints data', async () => {
    const result = await runCli(['ping', tcp, '--json'], { env });
    const data = JSON.parse(result.stdout) as { rttMs: number[]; authenticated: boolean };
    assert.equal(data.rttMs.length, 1);
    assert.equal(data.authenticated, true);
  });

  test('echo TEXT prints the upper-cased reply', async () => {
    const result = await runCli(['echo', tcp, 'hello', 'world'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'HELLO WORLD\n');
  });

  test('interactive echo answers each line and stops at quit', async () => {
    const result = await runCli(['echo', tcp], { env, input: 'one\ntwo\nquit\nthree\n' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'ONE\nTWO\n');
  });

  test('TLS: the first connection pins the fingerprint; a changed one is refused with exit 6', async () => {
    const first = await runCli(['echo', tls, 'secure'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'SECURE\n');
    assert.match(first.stderr, /pinned new TLS fingerprint/);
    const second = await runCli(['echo', tls, 'again'], { env });
    assert.equal(second.code, 0);
    assert.doesNotMatch(second.stderr, /pinned/);

    const knownHosts = join(state.path, 'known_hosts');
    const pinned = readFileSync(knownHosts, 'utf8');
    writeFileSync(knownHosts, pinned.replace(/ ([0-9A-F]{2})/, ' 00'));
    const changed = await runCli(['echo', tls, 'intercepted?'], { env });
    assert.equal(changed.code, 6);
    assert.equal(changed.stdout, '');
    assert.match(changed.stderr, /^sockit: TLS_FINGERPRINT_CHANGED: .*changed.*known_hosts/);
    assert.equal(changed.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
    writeFileSync(knownHosts, pinned);
  });

  test('--fingerprint pins explicitly', async () => {
    const fingerprint = readFileSync(join(state.path, 'known_hosts'), 'utf8').split(' ')[1]!.trim();
    const ok = await runCli(
      ['ping', tls, '--fingerprint', fingerprint, '--known-hosts', join(state.path, 'none')],
      { env },
    );
    assert.equal(ok.code, 0, ok.stderr);
    const wrong = await runCli(['ping', tls, '--fingerprint', 'AB'.repeat(32)], { env });
    assert.equal(wrong.code, 6);
  });

  test('a wrong token exits 5 with one line', async () => {
    const result = await runCli(['ping', tcp], { env: { ...env, SOCKIT_TOKEN: 'wrong' } });
    assert.equal(result.code, 5);
    assert.match(result.stderr, /^sockit: AUTH_FAILED: authentication failed/);
  });

  test('a refused connection exits 3, a bad address exits 2', async () => {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const refused = await runCli(['ping', `127.0.0.1:${port}`], { env });
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /connection refused/);
    const bad = await runCli(['ping', 'nonsense'], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad address "nonsense"/);
  });

  test('every command has --help', async () => {
    for (const command of ['serve', 'ping', 'echo']) {
      const result = await runCli([command, '--help']);
      assert.equal(result.code, 0);
      assert.match(result.stdout, new RegExp(`Usage: sockit ${command}`));
    }
  });

  test('SIGTERM shuts down gracefully with exit code 0', async () => {
    const stopped = waitForLine(server.stderr, /"msg":"stopped"/);
    server.kill('SIGTERM');
    const [code] = (await once(server, 'exit')) as [number | null];
    assert.equal(code, 0);
    await stopped;
  });
});
