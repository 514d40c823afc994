/**
 * Dead peers: SIGSTOP one end (its socket stays open, nothing answers) and the other end must
 * give up within INTERVAL × (COUNT + 1): exec and shell (also in a terminal) exit 255, chat and
 * a tunnel exit 3, the server kills the command.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect } from '../../src/client/client.js';
import type { SockitError } from '../../src/errors.js';
import { isDead, startExec, waitUntilDead } from '../exec/helpers.js';
import { CLI, runCli, TEST_TOKEN, tempDir, waitForLine } from '../helpers.js';

const INTERVAL_MS = 300;
const COUNT = 3;
/** The bound, plus what a loaded 2-core machine needs to notice and exit (one tick, process exit). */
const BOUND_MS = INTERVAL_MS * (COUNT + 1);
const SLACK_MS = 700;

/**
 * A command that says it runs, then stays quiet; and the line it prints (from a terminal too,
 * where a shell's prompt, `$ ` or `# `, comes first on that line when the terminal echoed the
 * typed line before the prompt).
 */
const UP_THEN_SLEEP = ['sh', '-c', 'echo up; exec sleep 30'];
const UP = /(^|[$#] )up\r?$/;

const children = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('close', () => children.delete(child));
  return child;
}

describe('keepalive', { timeout: 60_000 }, () => {
  after(async () => {
    for (const child of children) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await once(child, 'close').catch(() => {});
    }
  });

  /**
   * Starts `sockit serve` (exec with terminals, chat and tunnels; server keepalive INTERVAL_MS),
   * runs `sockit CLIENT_ARGS…` against it (stdin a pipe that stays open, with `input` written to
   * it), SIGSTOPs the server once the client printed a line matching `ready` (on stdout, or
   * stderr), and returns how the client ended and how long that took. `clientArgs(address,
   * dir)` may write files into dir.
   */
  async function clientOfStoppedServer(
    clientArgs: (address: string, dir: string) => string[],
    ready: { line: RegExp; stream?: 'stdout' | 'stderr'; input?: string } = { line: UP },
  ): Promise<{ code: number; stderr: string; tookMs: number }> {
    const state = await tempDir();
    try {
      const server = track(
        spawn(
          process.execPath,
          [
            CLI,
            'serve',
            '--exec',
            '--allow-pty',
            '--shell-command',
            'sh',
            '--chat',
            '--tunnel-allow',
            '127.0.0.1:9',
            '--keepalive',
            `${INTERVAL_MS}ms`,
            '--state-dir',
            state.path,
            'tcp://127.0.0.1:0',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SOCKIT_TOKEN: '', HOME: state.path } },
        ),
      );
      server.stderr!.resume();
      const [address] = await waitForLine(server.stdout!, /tcp:\/\/127\.0\.0\.1:\d+/);
      const client = track(
        spawn(process.execPath, [CLI, ...clientArgs(address!, state.path)], {
          // The token comes from the server's state dir; the config file (if any) from XDG_CONFIG_HOME.
          stdio: ['pipe', 'pipe', 'pipe'],
          env: {
            ...process.env,
            SOCKIT_TOKEN: '',
            SOCKIT_STATE_DIR: state.path,
            HOME: state.path,
            XDG_CONFIG_HOME: state.path,
          },
        }),
      );
      client.stdin!.on('error', () => {});
      if (ready.input !== undefined) client.stdin!.write(ready.input);
      let stderr = '';
      client.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk;
      });
      client.stdout!.resume();
      await waitForLine(ready.stream === 'stderr' ? client.stderr! : client.stdout!, ready.line);
      const exited = once(client, 'close');
      server.kill('SIGSTOP');
      const stoppedAt = performance.now();
      const [code] = await exited;
      const tookMs = performance.now() - stoppedAt;
      server.kill('SIGCONT');
      return { code: code as number, stderr, tookMs };
    } finally {
      await state.cleanup();
    }
  }

  /** Asserts that the client gave up within INTERVAL × (COUNT + 1) of silence, and not before COUNT intervals. */
  function assertWithinBound(tookMs: number, interval = INTERVAL_MS, count = COUNT): void {
    assert.ok(tookMs >= interval * count, `gave up too early: ${tookMs} ms`);
    assert.ok(
      tookMs <= interval * (count + 1) + SLACK_MS,
      `gave up after ${tookMs} ms, bound ${interval * (count + 1)} ms`,
    );
  }

  /** The client's keepalive options of these tests. */
  const KEEPALIVE = ['--keepalive', `${INTERVAL_MS}ms`, '--keepalive-count', String(COUNT)];
  /** What the client says when the server stopped answering. */
  const STOPPED_ANSWERING =
    /the server stopped answering \(nothing for \d+ ms; 3 pings 300 ms apart unanswered\)/;

  test('a client whose server stopped answering exits 255 within the bound, saying why', async () => {
    const { code, stderr, tookMs } = await clientOfStoppedServer((address) => [
      'exec',
      ...KEEPALIVE,
      address,
      '--',
      ...UP_THEN_SLEEP,
    ]);
    assert.equal(code, 255, stderr);
    assert.match(stderr, new RegExp(`CLOSED: ${STOPPED_ANSWERING.source}`));
    assertWithinBound(tookMs);
  });

  test('the keepalive of a host alias in the client config file is the one applied', async () => {
    // Not the defaults (15 s × 3, which would outlast the test) and not the CLI: only the file says 2 × 250 ms.
    const interval = 250;
    const count = 2;
    const { code, stderr, tookMs } = await clientOfStoppedServer((address, dir) => {
      mkdirSync(join(dir, 'sockit'), { recursive: true });
      writeFileSync(
        join(dir, 'sockit', 'config'),
        `[*]\nkeepalive = 30s\n\n[stopped]\naddress = ${address}\nkeepalive = ${interval}ms\nkeepalive-count = ${count}\n`,
      );
      return ['exec', 'stopped', '--', ...UP_THEN_SLEEP];
    });
    assert.equal(code, 255, stderr);
    assert.match(
      stderr,
      /the server stopped answering \(nothing for \d+ ms; 2 pings 250 ms apart unanswered\)/,
    );
    assertWithinBound(tookMs, interval, count);
  });

  test('exec -tt and shell -tt (a terminal) exit 255 within the bound, saying why', async () => {
    const exec = await clientOfStoppedServer((address) => [
      'exec',
      '-tt',
      ...KEEPALIVE,
      address,
      '--',
      ...UP_THEN_SLEEP,
    ]);
    assert.equal(exec.code, 255, exec.stderr);
    assert.match(exec.stderr, new RegExp(`CLOSED: ${STOPPED_ANSWERING.source}`));
    assertWithinBound(exec.tookMs);
    // The remote shell reads the line from its terminal, which echoes it (`u""p`: only the
    // command's output is a line "up").
    const shell = await clientOfStoppedServer((address) => ['shell', '-tt', ...KEEPALIVE, address], {
      line: UP,
      input: 'echo u""p; exec sleep 30\n',
    });
    assert.equal(shell.code, 255, shell.stderr);
    assert.match(shell.stderr, new RegExp(`CLOSED: ${STOPPED_ANSWERING.source}`));
    assertWithinBound(shell.tookMs);
  });

  test('sockit chat prints why and exits 3 within the bound', async () => {
    const { code, stderr, tookMs } = await clientOfStoppedServer(
      (address) => ['chat', '--name', 'alice', ...KEEPALIVE, address],
      { line: /^\* joined lobby as alice/ },
    );
    assert.equal(code, 3, stderr);
    assert.match(stderr, new RegExp(`^sockit: ${STOPPED_ANSWERING.source}\n$`));
    assertWithinBound(tookMs);
  });

  test('a tunnel notices the vanished server: exit 3, "the tunnel connection was lost", within the bound', async () => {
    const { code, stderr, tookMs } = await clientOfStoppedServer(
      (address) => ['tunnel', ...KEEPALIVE, address, '-L', '0:127.0.0.1:9'],
      { line: /-L listening on /, stream: 'stderr' },
    );
    assert.equal(code, 3, stderr);
    assert.match(
      stderr,
      new RegExp(`\nsockit: CLOSED: the tunnel connection was lost: ${STOPPED_ANSWERING.source}\n$`),
    );
    assertWithinBound(tookMs);
  });

  test('a server drops a client that stopped answering and kills its command', async () => {
    const exec = await startExec({}, { keepaliveMs: INTERVAL_MS, keepaliveCount: COUNT });
    const state = await tempDir();
    try {
      const client = track(
        spawn(
          process.execPath,
          [CLI, 'exec', '--keepalive', '0', exec.address, '--', 'sh', '-c', 'echo "pid=$$"; exec sleep 30'],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: state.path, HOME: state.path },
          },
        ),
      );
      client.stderr!.resume();
      const [, pid] = (await waitForLine(client.stdout!, /pid=(\d+)/)) as unknown as [string, string];
      assert.equal(isDead(Number(pid)), false);
      // The client says in hello that it answers pings, even with its own keepalive off.
      client.kill('SIGSTOP');
      const stoppedAt = performance.now();
      await waitUntilDead(Number(pid), BOUND_MS + SLACK_MS + 2000);
      const tookMs = performance.now() - stoppedAt;
      assert.ok(tookMs >= INTERVAL_MS * COUNT, `dropped too early: ${tookMs} ms`);
      assert.ok(tookMs <= BOUND_MS + SLACK_MS, `command killed after ${tookMs} ms, bound ${BOUND_MS} ms`);
      // isDead counts a zombie as dead: the server reaps it and ends the request on a later turn.
      for (let i = 0; exec.service.running > 0 && i < 500; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(exec.service.running, 0);
    } finally {
      await exec.stop();
      await state.cleanup();
    }
  });

  test('a quiet connection whose peer answers stays up at both ends', async () => {
    const exec = await startExec({}, { keepaliveMs: 100, keepaliveCount: 1 });
    try {
      const client = await connect(exec.address, {
        token: TEST_TOKEN,
        stateDir: exec.stateDir,
        keepaliveMs: 100,
        keepaliveCount: 1,
      });
      try {
        // Ten intervals of silence in the command: both ends ping, both answer, nothing is dropped.
        const result = await client.exec(['sleep', '1']);
        assert.equal(result.code, 0);
        assert.equal(await client.ping().then(() => 'alive'), 'alive');
      } finally {
        client.destroy();
      }
    } finally {
      await exec.stop();
    }
  });

  test('bad keepalive settings are refused', async () => {
    const invalid = (error: SockitError) => error.code === 'INVALID_OPTION';
    await assert.rejects(connect('tcp://127.0.0.1:1', { keepaliveMs: -1 }), invalid);
    await assert.rejects(connect('tcp://127.0.0.1:1', { keepaliveCount: 0 }), invalid);
    const bad = await runCli(['exec', '--keepalive', 'soon', 'tcp://127.0.0.1:1', '--', 'true']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--keepalive takes a duration/);
    const serve = await runCli(['serve', '--keepalive-count', '0', 'tcp://127.0.0.1:0']);
    assert.equal(serve.code, 2);
    assert.match(serve.stderr, /--keepalive-count must be at least 1/);
  });
});
