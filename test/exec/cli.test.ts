import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, runCli, spawnForFile, TEST_TOKEN, tempDir, waitForLine } from '../helpers.js';
import { isDead, startExec, waitUntilDead } from './helpers.js';

/**
 * Fan-out output (`ADDRESS: line`) split by server, each server's lines in order. Every line must
 * carry one of the prefixes: a torn or unprefixed line fails here.
 */
function linesByServer(stdout: string, addresses: string[]): Record<string, string[]> {
  const byServer: Record<string, string[]> = Object.fromEntries(addresses.map((address) => [address, []]));
  for (const line of stdout.split('\n').slice(0, -1)) {
    const address = addresses.find((candidate) => line.startsWith(`${candidate}: `));
    assert.ok(address, `a whole, prefixed line: ${JSON.stringify(line)} in ${JSON.stringify(stdout)}`);
    byServer[address].push(line.slice(address.length + 2));
  }
  assert.ok(stdout.endsWith('\n'), `ends with a whole line: ${JSON.stringify(stdout)}`);
  return byServer;
}

describe('sockit exec', () => {
  let env: Awaited<ReturnType<typeof startExec>>;
  let other: Awaited<ReturnType<typeof startExec>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cliEnv: NodeJS.ProcessEnv;
  const exec = (args: string[], options: { input?: string | Buffer; stdin?: 'pipe' | 'ignore' } = {}) =>
    runCli(['exec', ...args], { env: cliEnv, ...options });

  before(async () => {
    env = await startExec();
    // The second server starts commands with child_process: fan-out covers both spawners.
    other = await startExec({ spawner: 'node' });
    dir = await tempDir('sockit-exec-cli-');
    cliEnv = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path };
  });
  after(async () => {
    await env.stop();
    await other.stop();
    await dir.cleanup();
  });

  test('exits with the remote code; stdout and stderr go to their own streams', async () => {
    for (const code of [0, 1, 42]) {
      const result = await exec([env.address, '--', 'sh', '-c', `echo out; echo err >&2; exit ${code}`]);
      assert.equal(result.code, code, result.stderr);
      assert.equal(result.stdout, 'out\n');
      assert.equal(result.stderr, 'err\n');
    }
  });

  test('death by a signal exits 128 + its number', async () => {
    assert.equal((await exec([env.address, '--', 'sh', '-c', 'kill -TERM $$'])).code, 143);
    assert.equal((await exec([env.address, '--', 'sh', '-c', 'kill -KILL $$'])).code, 137);
  });

  test('arguments reach the program as they are, options after -- included', async () => {
    const result = await exec([env.address, '--', 'echo', '-n', 'a;b', '$(id)', '--timeout']);
    assert.equal(result.stdout, 'a;b $(id) --timeout');
  });

  test('local stdin is forwarded when it is not a terminal; -n turns it off', async () => {
    const piped = await exec([env.address, '--', 'wc', '-c'], { input: 'hello world' });
    assert.equal(piped.stdout.trim(), '11');
    const off = await exec(['-n', env.address, '--', 'wc', '-c'], { input: 'hello world' });
    assert.equal(off.stdout.trim(), '0');
  });

  test("a local stdin of /dev/null is not forwarded: the command reads the server's /dev/null", async () => {
    const ignored = await exec([env.address, '--', 'readlink', '/proc/self/fd/0'], { stdin: 'ignore' });
    assert.equal(ignored.code, 0, ignored.stderr);
    assert.equal(ignored.stdout, '/dev/null\n');
    // Anything else that is not a terminal is still forwarded (the server's pipe or socket pair).
    const piped = await exec([env.address, '--', 'readlink', '/proc/self/fd/0'], { input: '' });
    assert.match(piped.stdout, /^(pipe|socket):/);
  });

  test('binary output is byte-exact through the CLI', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    const file = join(dir.path, 'blob');
    await writeFile(file, bytes);
    const result = await exec([env.address, '--', 'cat', file]);
    assert.equal(result.code, 0);
    assert.ok(result.stdoutBytes.equals(bytes));
  });

  test('--cwd, --env, --shell refused by a server without shells', async () => {
    assert.equal((await exec(['--cwd', dir.path, env.address, '--', 'pwd'])).stdout.trim(), dir.path);
    const vars = await exec(['--env', 'A=1', '--env', 'B=x=y', env.address, '--', 'sh', '-c', 'echo $A $B']);
    assert.equal(vars.stdout, '1 x=y\n');
    const shell = await exec(['--shell', 'echo hi', env.address]);
    assert.equal(shell.code, 126);
    assert.match(shell.stderr, /FORBIDDEN/);
  });

  test('a missing program exits 127, a timeout 124', async () => {
    const missing = await exec([env.address, '--', 'sockit-no-such-program']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /NOT_FOUND/);
    const slow = await exec(['--timeout', '200ms', env.address, '--', 'sleep', '30']);
    assert.equal(slow.code, 124);
    assert.match(slow.stderr, /timeout/);
  });

  test('a connection failure exits 255', async () => {
    const result = await exec([`unix:${join(dir.path, 'no-such.sock')}`, '--', 'true']);
    assert.equal(result.code, 255);
    assert.match(result.stderr, /CONNECT_FAILED/);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await exec([env.address])).code, 2);
    assert.equal((await exec(['--shell', 'x', env.address, '--', 'true'])).code, 2);
    assert.equal((await exec(['--env', 'NOEQUALS', env.address, '--', 'true'])).code, 2);
  });

  test('fan-out runs on every server, prefixes lines, and sums up', async () => {
    const ok = await exec([`${env.address},${other.address}`, '--', 'sh', '-c', 'echo one; printf two']);
    assert.equal(ok.code, 0, ok.stderr);
    // Whole lines, each prefixed; the servers' lines may interleave, so compare per server.
    assert.deepEqual(linesByServer(ok.stdout, [env.address, other.address]), {
      [env.address]: ['one', 'two'],
      [other.address]: ['one', 'two'],
    });
    assert.match(ok.stderr, /all 2 servers succeeded/);

    const bad = `unix:${join(dir.path, 'gone.sock')}`;
    const mixed = await exec([`${env.address},${bad}`, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(mixed.code, 255, 'the highest status: a connection failure');
    assert.equal(mixed.stdout, `${env.address}: out\n`);
    assert.ok(mixed.stderr.includes(`${env.address}: err\n`));
    assert.match(mixed.stderr, /2 of 2 servers failed/);
    assert.match(mixed.stderr, new RegExp(`${bad}.*FAIL.*CONNECT_FAILED`));
    assert.match(mixed.stderr, /FAIL +exit 3/);

    const failing = await exec([`${env.address},${other.address}`, '--', 'sh', '-c', 'exit 3']);
    assert.equal(failing.code, 3);
    assert.match(failing.stderr, /2 of 2 servers failed/);
  });

  test('fan-out sends the same stdin to every server', async () => {
    const result = await exec([`${env.address},${other.address}`, '--', 'wc', '-c'], { input: 'abcdef' });
    assert.equal(result.code, 0);
    assert.deepEqual(linesByServer(result.stdout, [env.address, other.address]), {
      [env.address]: ['6'],
      [other.address]: ['6'],
    });
    // A server that cannot be reached does not hold up, or eat, the others' stdin.
    const bad = `unix:${join(dir.path, 'absent.sock')}`;
    const partly = await exec([`${bad},${env.address}`, '--', 'wc', '-c'], { input: 'abcdef' });
    assert.equal(partly.code, 255);
    assert.equal(partly.stdout, `${env.address}: 6\n`);
  });

  test('Ctrl-C (SIGINT) is forwarded to the remote command', async () => {
    const script =
      "process.on('SIGINT', () => { console.log('got SIGINT'); process.exit(7); }); console.log('ready'); setInterval(() => {}, 1000);";
    const cli = spawnForFile(
      process.execPath,
      [CLI, 'exec', env.address, '--', process.execPath, '-e', script],
      {
        env: { ...process.env, ...cliEnv },
      },
    );
    let stdout = '';
    cli.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    await waitForLine(cli.stdout, /^ready$/);
    cli.kill('SIGINT');
    const [code] = await once(cli, 'close');
    assert.equal(code, 7);
    assert.match(stdout, /got SIGINT/);
  });

  test('Ctrl-C on a command that does not catch it exits 130 and the command is gone', async () => {
    const cli = spawnForFile(
      process.execPath,
      [CLI, 'exec', env.address, '--', 'sh', '-c', 'echo $$; exec sleep 1000'],
      {
        env: { ...process.env, ...cliEnv },
      },
    );
    const [line] = await waitForLine(cli.stdout, /^\d+$/);
    const pid = Number(line);
    assert.equal(isDead(pid), false);
    cli.kill('SIGINT');
    const [code] = await once(cli, 'close');
    assert.equal(code, 130);
    await waitUntilDead(pid);
  });

  test('a closed local stdout (| head) stops the remote command', async () => {
    const cli = spawnForFile(process.execPath, [CLI, 'exec', env.address, '--', 'yes'], {
      env: { ...process.env, ...cliEnv },
    });
    await waitForLine(cli.stdout, /^y$/);
    cli.stdout.destroy();
    const [code] = await once(cli, 'close');
    assert.equal(code, 141);
    // The server saw the disconnect: nothing is left running.
    for (let i = 0; env.service.running > 0 && i < 500; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(env.service.running, 0);
  });
});

describe('sockit serve exec options', () => {
  test('conflicting or incomplete exec flags are usage errors', async () => {
    const cases: [string[], RegExp][] = [
      [['--exec', '--exec-allow', 'ls'], /--exec and --exec-allow/],
      [['--allow-shell'], /--allow-shell needs --exec/],
      [['--exec-audit', 'x.log'], /--exec-audit needs --exec/],
      [['--exec-allow', 'ls', '--allow-shell'], /--allow-shell and --exec-allow/],
      [['--exec', '--open', 'echo,exec'], /always needs the token/],
      [['--exec', '--exec-max-output', 'lots'], /--exec-max-output/],
      [['--exec', '--exec-spawner', 'fork'], /--exec-spawner must be one of native, node; got "fork"/],
      [['--exec-spawner', 'node'], /--exec-spawner needs --exec/],
    ];
    for (const [flags, message] of cases) {
      const result = await runCli(['serve', ...flags, 'tcp://127.0.0.1:0']);
      assert.equal(result.code, 2, `${flags.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  test('sockit serve --exec-allow runs only the listed programs, and audits to a file', async () => {
    const dir = await tempDir('sockit-exec-serve-');
    const audit = join(dir.path, 'audit.jsonl');
    const server = spawnForFile(process.execPath, [
      CLI,
      'serve',
      '--state-dir',
      dir.path,
      '--exec-allow',
      'echo',
      '--exec-audit',
      audit,
      'tcp://127.0.0.1:0',
    ]);
    try {
      const [address] = await waitForLine(server.stdout, /tcp:\/\/127\.0\.0\.1:\d+/);
      const cliEnv = { SOCKIT_STATE_DIR: dir.path };
      const echo = await runCli(['exec', address, '--', 'echo', 'allowed'], { env: cliEnv });
      assert.equal(echo.code, 0, echo.stderr);
      assert.equal(echo.stdout, 'allowed\n');
      const ls = await runCli(['exec', address, '--', 'ls'], { env: cliEnv });
      assert.equal(ls.code, 126);
      assert.match(ls.stderr, /allow-list/);
      server.kill('SIGTERM');
      await once(server, 'close');
      const entries = (await readFile(audit, 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      assert.deepEqual(
        entries.map((entry) => [entry.argv, entry.outcome]),
        [
          [['echo', 'allowed'], 'exit'],
          [['ls'], 'refused'],
        ],
      );
    } finally {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
      await dir.cleanup();
    }
  });
});
