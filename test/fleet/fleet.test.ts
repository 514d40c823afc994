/**
 * `sockit exec --hosts`: one `sockit serve` process with its default limits (32 commands at
 * once, so `--par 50` may meet BUSY; the BUSY test makes sure of it) listening on 200 loopback ports, plus 3 ports with nothing
 * listening, run with a parallelism limit, in each output mode. The server's debug log
 * (`connection opened` with the count open) is how the test sees the connections.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, TEST_TOKEN, tempDir } from '../helpers.js';
import { closedPort, killAll, type Running, sockit, waitForCount, waitForText } from '../raw/helpers.js';

const UP = 200;
const DOWN = 3;
/** The server's default --exec-max-running. */
const MAX_RUNNING = 32;

const OPENED = /"msg":"connection opened"/;
const CLOSED = /"msg":"connection closed"/;
const REFUSED_BUSY = /"msg":"exec".*"outcome":"refused","error":"BUSY"/;

describe('sockit exec --hosts', { timeout: 120_000 }, () => {
  let server: Running;
  let ports: number[];
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let hostsFile: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = await tempDir('sockit-fleet-');
    // The token the clients present (SOCKIT_TOKEN), where the server looks for its own.
    await writeFile(join(dir.path, 'token'), TEST_TOKEN, { mode: 0o600 });
    server = sockit(
      [
        'serve',
        '--exec-allow',
        'uname,sh',
        '--state-dir',
        dir.path,
        '--log-level',
        'debug',
        '--json-logs',
        ...Array.from({ length: UP }, () => 'tcp://127.0.0.1:0'),
      ],
      { env: { HOME: dir.path }, stdin: 'ignore' },
    );
    await waitForText(server, /^token: /m, 'stdout');
    ports = [
      ...server
        .stdout()
        .toString()
        .matchAll(/^ {2}tcp:\/\/127\.0\.0\.1:(\d+)$/gm),
    ].map((match) => Number(match[1]));
    assert.equal(new Set(ports).size, UP, 'one process listens on 200 ports');
    const down = await Promise.all(Array.from({ length: DOWN }, () => closedPort()));
    const lines = [
      '# test inventory',
      '[up]',
      ...ports.map((port, index) => `h${index + 1} = tcp://127.0.0.1:${port}`),
      '',
      '[down]',
      ...down.map((port) => `tcp://127.0.0.1:${port}   # nothing listens`),
    ];
    hostsFile = join(dir.path, 'hosts');
    await writeFile(hostsFile, `${lines.join('\n')}\n`);
    env = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
  });
  after(async () => {
    await server?.stop();
    await killAll();
    await dir.cleanup();
  });

  const cli = (args: string[], file = hostsFile) =>
    runCli(['exec', '--hosts', file, ...args], { env, timeoutMs: 60_000 });

  /** How often `pattern` has matched the server's log so far. */
  const logCount = (pattern: RegExp): number =>
    server
      .stderr()
      .split('\n')
      .filter((line) => pattern.test(line)).length;

  /**
   * Runs `work`, then waits until the server has logged the close of `expected` connections
   * (its log may trail the client's exit); returns the result, the connections opened
   * meanwhile and the most open at once.
   */
  async function counted<T>(
    expected: number,
    work: () => Promise<T>,
  ): Promise<{ result: T; opened: number; mostOpen: number }> {
    const from = server.stderr().length;
    const closedBefore = logCount(CLOSED);
    const result = await work();
    await waitForCount(server, CLOSED, closedBefore + expected);
    const opened = server
      .stderr()
      .slice(from)
      .split('\n')
      .filter((line) => OPENED.test(line))
      .map((line) => JSON.parse(line) as { open: number });
    return { result, opened: opened.length, mostOpen: Math.max(0, ...opened.map((entry) => entry.open)) };
  }

  /** A hosts file of the first `count` up hosts. */
  async function firstHosts(name: string, count: number): Promise<string> {
    const file = join(dir.path, name);
    const lines = ports.slice(0, count).map((port, index) => `${name}${index + 1} = tcp://127.0.0.1:${port}`);
    await writeFile(file, `${lines.join('\n')}\n`);
    return file;
  }

  test('--par 50 --group-output: one block for 200 hosts, 3 failures, exit 255, at most 50 connections', async () => {
    const busyBefore = logCount(REFUSED_BUSY);
    const { result, opened, mostOpen } = await counted(UP, () =>
      cli(['--par', '50', '--group-output', '--', 'uname', '-s']),
    );
    assert.equal(result.code, 255, result.stderr);
    const names = Array.from({ length: UP }, (_, index) => `h${index + 1}`).join(',');
    assert.equal(result.stdout, `${'-'.repeat(15)}\n${names} (${UP})\n${'-'.repeat(15)}\nLinux\n`);
    assert.match(result.stderr, /^sockit exec: 200 of 203 hosts succeeded, 3 failed\n/);
    assert.equal(result.stderr.match(/FAIL {2}CONNECT_FAILED/g)?.length, DOWN);
    // A BUSY host is asked again on its own connection: one connection per host.
    assert.equal(opened, UP, `${logCount(REFUSED_BUSY) - busyBefore} BUSY answers were retried`);
    assert.ok(mostOpen <= 50, `${mostOpen} connections at once`);
    assert.ok(mostOpen > 1, 'hosts ran in parallel');
  });

  test('--json: one object per host, each with its duration', async () => {
    const result = await cli(['--par', '50', '--json', '--', 'uname', '-s']);
    assert.equal(result.code, 255);
    const objects = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(objects.length, UP + DOWN);
    for (const object of objects) {
      assert.equal(typeof object.durationMs, 'number', JSON.stringify(object));
      assert.ok(object.durationMs >= 0);
    }
    const ok = objects.filter((object) => object.exit === 0);
    assert.equal(ok.length, UP);
    for (const object of ok) {
      assert.equal(object.stdout, 'Linux\n');
      assert.equal(object.stderr, '');
      assert.equal(object.signal, null);
    }
    const failed = objects.filter((object) => object.exit !== 0);
    assert.deepEqual(
      failed.map((object) => [object.exit, object.error.code]),
      Array.from({ length: DOWN }, () => [255, 'CONNECT_FAILED']),
    );
  });

  test('a server running its maximum answers BUSY: the hosts wait, then run once it frees up', async () => {
    // 32 hosts hold every slot of the server until the blocker is stopped.
    const blocker = sockit(
      ['exec', '--hosts', await firstHosts('slot', MAX_RUNNING), '--', 'sh', '-c', 'echo up; exec sleep 30'],
      { env, stdin: 'ignore' },
    );
    try {
      await waitForCount(blocker, /: up\n/g, MAX_RUNNING, 'stdout');
      const two = await firstHosts('two', 2);
      const timedOut = await cli(['--host-timeout', '500ms', '--', 'uname', '-s'], two);
      assert.equal(timedOut.code, 124, timedOut.stderr);
      assert.match(
        timedOut.stderr,
        /two1 {2}FAIL {2}TIMEOUT: --host-timeout passed while the server was BUSY/,
      );

      const busyBefore = logCount(REFUSED_BUSY);
      const waiting = cli(['--json', '--', 'uname', '-s'], two);
      // Both hosts were refused (and keep being asked) while the slots are taken.
      await waitForCount(server, REFUSED_BUSY, busyBefore + 4);
      await blocker.stop();
      const result = await waiting;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, 'sockit exec: all 2 hosts succeeded\n');
      assert.deepEqual(
        result.stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line).stdout),
        ['Linux\n', 'Linux\n'],
      );
    } finally {
      await blocker.stop();
    }
  });

  test('one slot left: a host refused BUSY gives up its stdin and runs after; after Ctrl-C no waiting host starts', async () => {
    // 31 hosts hold all but one slot of the server until the blocker is stopped.
    const blocker = sockit(
      [
        'exec',
        '--hosts',
        await firstHosts('held', MAX_RUNNING - 1),
        '--',
        'sh',
        '-c',
        'echo up; exec sleep 30',
      ],
      { env, stdin: 'ignore' },
    );
    try {
      await waitForCount(blocker, /: up\n/g, MAX_RUNNING - 1, 'stdout');
      const two = await firstHosts('pair', 2);
      // One host gets the last slot, the other is BUSY: that one gives up its share of stdin, so
      // the running one gets it and ends, freeing the slot, and the other then runs without.
      const fed = await runCli(['exec', '--hosts', two, '--', 'sh', '-c', 'cat; echo done'], {
        env,
        input: 'fed\n',
        timeoutMs: 30_000,
      });
      assert.equal(fed.code, 0, fed.stderr);
      assert.deepEqual(
        fed.stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => line.replace(/^pair\d: /, ''))
          .sort(),
        ['done', 'done', 'fed'],
      );

      // Again, but the one that runs sleeps: the other waits on BUSY. A Ctrl-C interrupts the
      // running one and the waiting one must not start in the slot that frees up.
      const interrupted = sockit(['exec', '--hosts', two, '--', 'sh', '-c', 'echo up; exec sleep 30'], {
        env,
        stdin: 'ignore',
      });
      const busyBefore = logCount(REFUSED_BUSY);
      await waitForCount(interrupted, /: up\n/g, 1, 'stdout');
      await waitForCount(server, REFUSED_BUSY, busyBefore + 1);
      interrupted.child.kill('SIGINT');
      const { code } = await interrupted.exited;
      assert.notEqual(code, 0);
      assert.equal(
        interrupted
          .stdout()
          .toString()
          .match(/: up\n/g)?.length,
        1,
        interrupted.stdout().toString(),
      );
    } finally {
      await blocker.stop();
    }
  });

  test('-g selects groups; prefixed lines by default; exit 0 when all succeed', async () => {
    const result = await cli(['-g', 'up', '--', 'uname', '-s']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, UP);
    assert.ok(lines.includes('h7: Linux'));
    assert.equal(result.stderr, 'sockit exec: all 200 hosts succeeded\n');
    const down = await cli(['-g', 'down', '--', 'uname']);
    assert.equal(down.code, 255);
    assert.match(down.stderr, /0 of 3 hosts succeeded, 3 failed/);
  });

  test('--outdir writes stdout, stderr and exit per host', async () => {
    const out = join(dir.path, 'out');
    const result = await cli([
      '-g',
      'up',
      '--outdir',
      out,
      '--',
      'sh',
      '-c',
      'echo out; echo err >&2; exit 3',
    ]);
    assert.equal(result.code, 3);
    assert.equal(await readFile(join(out, 'h1.stdout'), 'utf8'), 'out\n');
    assert.equal(await readFile(join(out, 'h200.stderr'), 'utf8'), 'err\n');
    assert.equal(await readFile(join(out, 'h42.exit'), 'utf8'), '3\n');
  });

  test('--host-timeout gives up on a host: exit 124 for it', async () => {
    const hosts = join(dir.path, 'pair');
    await writeFile(hosts, `a = tcp://127.0.0.1:${ports[0]}\nb = tcp://127.0.0.1:${ports[1]}\n`);
    const started = performance.now();
    const result = await cli(['--host-timeout', '300ms', '--', 'sh', '-c', 'sleep 20'], hosts);
    assert.equal(result.code, 124, result.stderr);
    assert.ok(performance.now() - started < 10_000);
    assert.match(result.stderr, /a {2}FAIL {2}TIMEOUT: --host-timeout passed; cancelled/);
  });

  test('a bad inventory, a name given two addresses, an unknown group or two output modes are usage errors', async () => {
    const bad = join(dir.path, 'bad');
    await writeFile(bad, 'web1 = \n');
    const malformed = await cli(['--', 'true'], bad);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /bad:1: expected ADDRESS, NAME = ADDRESS or \[group\]/);
    const twice = join(dir.path, 'twice');
    await writeFile(
      twice,
      `[web]\na = tcp://127.0.0.1:${ports[0]}\n[db]\na = tcp://127.0.0.1:${ports[0]}\nb = tcp://127.0.0.1:${ports[1]}\n[more]\na = tcp://127.0.0.1:${ports[1]}\n`,
    );
    const duplicate = await cli(['--', 'uname', '-s'], twice);
    assert.equal(duplicate.code, 2);
    assert.equal(
      duplicate.stderr,
      `sockit: USAGE: --hosts ${twice}:7: "a" is tcp://127.0.0.1:${ports[1]} here but tcp://127.0.0.1:${ports[0]} at line 2\n`,
    );
    const group = await cli(['-g', 'nope', '--', 'true']);
    assert.equal(group.code, 2);
    assert.match(group.stderr, /-g nope: no such group/);
    const both = await cli(['--json', '--group-output', '--', 'true']);
    assert.equal(both.code, 2);
  });
});
