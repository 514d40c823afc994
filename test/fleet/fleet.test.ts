/**
 * `sockit exec --hosts`: one server listening on 200 loopback ports plus 3 ports with nothing
 * listening, run with a parallelism limit, in each output mode.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Server } from '../../src/server/server.js';
import { execService } from '../../src/services/exec/index.js';
import { runCli, startServer, TEST_TOKEN, tempDir } from '../helpers.js';
import { closedPort } from '../raw/helpers.js';

const UP = 200;
const DOWN = 3;

describe('sockit exec --hosts', { timeout: 120_000 }, () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let hostsFile: string;
  let env: NodeJS.ProcessEnv;
  let open = 0;
  let mostOpen = 0;
  let connections = 0;

  before(async () => {
    server = await startServer({
      listen: Array.from({ length: UP }, () => 'tcp://127.0.0.1:0'),
      // More than --par commands may run at once: BUSY would be a server limit, not the fleet's.
      services: [execService({ allow: ['uname', 'sh'], maxRunning: 64 })],
    });
    const counted: Server = server.server;
    counted.on('connection', () => {
      connections++;
      mostOpen = Math.max(mostOpen, ++open);
    });
    counted.on('disconnect', () => open--);
    dir = await tempDir('sockit-fleet-');
    const down = await Promise.all(Array.from({ length: DOWN }, () => closedPort()));
    const lines = [
      '# test inventory',
      '[up]',
      ...server.server.addresses.map(
        (address, index) => `h${index + 1} = tcp://127.0.0.1:${(address as { port: number }).port}`,
      ),
      '',
      '[down]',
      ...down.map((port) => `tcp://127.0.0.1:${port}   # nothing listens`),
    ];
    hostsFile = join(dir.path, 'hosts');
    await writeFile(hostsFile, `${lines.join('\n')}\n`);
    env = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
  });
  after(async () => {
    await server.stop();
    await dir.cleanup();
  });

  const cli = (args: string[]) => runCli(['exec', '--hosts', hostsFile, ...args], { env, timeoutMs: 90_000 });

  test('--par 50 --group-output: one block for 200 hosts, 3 failures, exit 255, at most 50 connections', async () => {
    mostOpen = 0;
    connections = 0;
    const result = await cli(['--par', '50', '--group-output', '--', 'uname', '-s']);
    assert.equal(result.code, 255, result.stderr);
    const names = Array.from({ length: UP }, (_, index) => `h${index + 1}`).join(',');
    assert.equal(result.stdout, `${'-'.repeat(15)}\n${names} (${UP})\n${'-'.repeat(15)}\nLinux\n`);
    assert.match(result.stderr, /^sockit exec: 200 of 203 hosts succeeded, 3 failed\n/);
    assert.equal(result.stderr.match(/FAIL {2}CONNECT_FAILED/g)?.length, DOWN);
    assert.equal(connections, UP);
    assert.ok(mostOpen <= 50, `${mostOpen} connections at once`);
    assert.ok(mostOpen > 1, 'hosts ran in parallel');
  });

  test('--json: one object per host', async () => {
    const result = await cli(['--par', '50', '--json', '--', 'uname', '-s']);
    assert.equal(result.code, 255);
    const objects = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(objects.length, UP + DOWN);
    const ok = objects.filter((object) => object.exit === 0);
    assert.equal(ok.length, UP);
    for (const object of ok) {
      assert.equal(object.stdout, 'Linux\n');
      assert.equal(object.stderr, '');
      assert.equal(object.signal, null);
      assert.equal(typeof object.durationMs, 'number');
    }
    const failed = objects.filter((object) => object.exit !== 0);
    assert.deepEqual(
      failed.map((object) => [object.exit, object.error.code]),
      Array.from({ length: DOWN }, () => [255, 'CONNECT_FAILED']),
    );
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
    const hosts = join(dir.path, 'two');
    const [first, second] = server.server.addresses as { port: number }[];
    await writeFile(hosts, `a = tcp://127.0.0.1:${first!.port}\nb = tcp://127.0.0.1:${second!.port}\n`);
    const started = performance.now();
    const result = await runCli(
      ['exec', '--hosts', hosts, '--host-timeout', '300ms', '--', 'sh', '-c', 'sleep 20'],
      { env },
    );
    assert.equal(result.code, 124, result.stderr);
    assert.ok(performance.now() - started < 10_000);
    assert.match(result.stderr, /a {2}FAIL {2}TIMEOUT: --host-timeout/);
  });

  test('a bad inventory, an unknown group or two output modes are usage errors', async () => {
    const bad = join(dir.path, 'bad');
    await writeFile(bad, 'web1 = \n');
    const malformed = await runCli(['exec', '--hosts', bad, '--', 'true'], { env });
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /bad:1: expected ADDRESS, NAME = ADDRESS or \[group\]/);
    const group = await cli(['-g', 'nope', '--', 'true']);
    assert.equal(group.code, 2);
    assert.match(group.stderr, /-g nope: no such group/);
    const both = await cli(['--json', '--group-output', '--', 'true']);
    assert.equal(both.code, 2);
  });
});
