/** A new user's first commands: the Try lines as printed, usage errors, prompts on a terminal, stdin/stdout transfers. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connectableAddress, sockitCommand, tryCommands } from '../../src/cli/try-commands.js';
import { parseAddress } from '../../src/transport/address.js';
import { CLI, runCli, tempDir } from '../helpers.js';
import { dial, killAll, type Listening, launch, readAll, startListen, waitForText } from '../raw/helpers.js';
import { requireTool } from '../tools.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const PTY_RUN = join(REPO, 'test', 'cli', 'pty_run.py');
const run = promisify(execFile);

describe('the Try lines of sockit serve', { timeout: 240_000 }, () => {
  it('fit the server: loopback for wildcard binds, an allowed exec command, quoting for the shell', () => {
    assert.equal(connectableAddress(parseAddress('tcp://0.0.0.0:7070')), 'tcp://127.0.0.1:7070');
    assert.equal(connectableAddress(parseAddress('tcp://[::]:7070')), "'tcp://[::1]:7070'");
    assert.equal(connectableAddress(parseAddress('tls://127.0.0.1:7443')), 'tls://127.0.0.1:7443');
    const context = (execAllow: 'any' | string[] | undefined, services: string[]) => ({
      address: parseAddress('tcp://127.0.0.1:7070'),
      services: new Set(services),
      execAllow,
    });
    assert.deepEqual(tryCommands(context(['echo'], ['echo', 'exec']), 'sockit'), [
      'sockit exec tcp://127.0.0.1:7070 -- echo hello',
      'sockit ping tcp://127.0.0.1:7070',
      'sockit echo tcp://127.0.0.1:7070 hello',
    ]);
    assert.equal(
      tryCommands(context('any', ['echo', 'exec']), 'sockit')[0],
      'sockit exec tcp://127.0.0.1:7070 -- uname -a',
    );
    assert.equal(
      tryCommands(context(['tar'], ['echo', 'exec']), 'sockit')[0],
      'sockit exec tcp://127.0.0.1:7070 -- tar',
    );
    assert.equal(sockitCommand('/work/checkout/build/src/cli/try-commands.js'), 'npx sockit');
    assert.equal(
      sockitCommand('/usr/lib/node_modules/sockit-toolkit/build/src/cli/try-commands.js'),
      'sockit',
    );
  });

  it('run as printed in the checkout (npx sockit …), each exiting 0', async () => {
    const home = await tempDir('sockit-home-');
    const root = await tempDir('sockit-root-');
    // npx keeps its cache under HOME; offline, so it can only run this checkout's own bin.
    const env = {
      ...process.env,
      HOME: home.path,
      SOCKIT_STATE_DIR: join(home.path, 'state'),
      SOCKIT_TOKEN: '',
      npm_config_cache: join(home.path, 'npm'),
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
    };
    const server = launch(
      process.execPath,
      [CLI, 'serve', 'tcp://127.0.0.1:0', '--exec-allow', 'echo', '--files', root.path],
      {
        env,
        stdin: 'ignore',
      },
    );
    try {
      await waitForText(server, /^\s+\(npx runs/m, 'stdout');
      const banner = server.stdout().toString('utf8');
      const lines = banner
        .split('\n')
        .filter((line) => line.startsWith('  npx sockit '))
        .map((line) => line.trim());
      assert.equal(lines.length, 4, banner);
      assert.match(lines[0]!, /^npx sockit exec tcp:\/\/127\.0\.0\.1:\d+ -- echo hello$/);
      const outputs: string[] = [];
      for (const line of lines) {
        const { stdout } = await run('sh', ['-c', line], { cwd: REPO, env, timeout: 90_000 });
        outputs.push(stdout);
      }
      assert.equal(outputs[0], 'hello\n');
      assert.match(outputs[1]!, /README\.md/);
      assert.match(outputs[2]!, /README\.md\n$/);
      assert.match(outputs[3]!, /^pong from /);
      assert.equal(
        await readFile(join(root.path, 'README.md'), 'utf8'),
        await readFile(join(REPO, 'README.md'), 'utf8'),
      );
    } finally {
      await server.stop();
      await home.cleanup();
      await root.cleanup();
    }
  });
});

describe('usage errors say what to type', { timeout: 60_000 }, () => {
  it('sockit alone prints usage to stderr and exits 2', async () => {
    const result = await runCli([]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^Usage: sockit \[options\] \[command\]\n/);
  });

  it('exec ADDR ls -la without -- hints at --', async () => {
    const result = await runCli(['exec', '127.0.0.1:1', 'ls', '-la']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `error: unknown option '-la'\nhint: put the command after "--" so that -la reaches it: sockit exec 127.0.0.1:1 -- ls -la\n(run with --help for usage)\n`,
    );
  });

  it('ping -c 0 is a usage error, before connecting', async () => {
    const result = await runCli(['ping', '127.0.0.1:1', '-c', '0']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'sockit: INVALID_OPTION: --count must be at least 1; got 0\n');
  });
});

describe('sockit listen serving one client', { timeout: 60_000 }, () => {
  let server: Listening;
  before(async () => {
    server = await startListen(['127.0.0.1:0', '-v']);
  });
  after(killAll);

  it('refuses a second client, logs it with -v, and exits 0 when the first is done', async () => {
    const first = await dial(server.port);
    await waitForText(server, /connection from /);
    const second = await dial(server.port);
    const refusal = await readAll(second);
    assert.equal(
      refusal.toString(),
      'sockit: connection refused: this listener serves one client and is busy (the listener needs --keep-open for more)\n',
    );
    await waitForText(server, /refused 127\.0\.0\.1:\d+: busy with one client \(use --keep-open for more\)/);
    first.end('bye\n');
    server.child.stdin!.end();
    const exit = await server.exited;
    assert.equal(exit.code, 0, server.stderr());
    assert.equal(server.stdout().toString(), 'bye\n');
  });
});

describe('files: / is the root, - is stdin or stdout', { timeout: 60_000 }, () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let state: Awaited<ReturnType<typeof tempDir>>;
  let server: ReturnType<typeof launch>;
  let address: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    root = await tempDir();
    state = await tempDir();
    env = { SOCKIT_STATE_DIR: state.path };
    server = launch(process.execPath, [CLI, 'serve', 'tcp://127.0.0.1:0', '--files', root.path], {
      env,
      stdin: 'ignore',
    });
    address = (await waitForText(server, /^ {2}(tcp:\/\/\S+)$/m, 'stdout'))[1]!;
  });
  after(async () => {
    await server.stop();
    await root.cleanup();
    await state.cleanup();
  });

  it('put - ADDR NAME uploads stdin; get ADDR NAME - prints it; ls ADDR / lists the root', async () => {
    const data = `${'stdin bytes é\n'.repeat(5000)}`;
    const put = await runCli(['put', '-', address, '/piped.txt'], { env, input: data });
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /^put \(stdin\) -> piped\.txt \(/);
    assert.equal(await readFile(join(root.path, 'piped.txt'), 'utf8'), data);

    const get = await runCli(['get', address, '/piped.txt', '-'], { env });
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, data, 'only the file on stdout, no progress');

    const ls = await runCli(['ls', address, '/'], { env });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, / {2}piped\.txt\n$/);
  });

  it('put - needs a file name, get -r cannot go to stdout', async () => {
    const put = await runCli(['put', '-', address, '/'], { env, input: 'x' });
    assert.equal(put.code, 2);
    assert.equal(
      put.stderr,
      'sockit: USAGE: put - needs a file name as REMOTE (stdin has no name), e.g. sockit put - ADDR notes.txt; got "/"\n',
    );
    const get = await runCli(['get', '-r', address, '/', '-'], { env });
    assert.equal(get.code, 2);
    assert.equal(get.stderr, 'sockit: USAGE: get -r writes a directory; "-" (stdout) takes one file\n');
  });
});

describe('interactive prompts on a terminal', { timeout: 90_000 }, () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let server: ReturnType<typeof launch>;
  let address: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    state = await tempDir();
    env = { ...process.env, SOCKIT_STATE_DIR: state.path, SOCKIT_TOKEN: '' };
    server = launch(process.execPath, [CLI, 'serve', 'tcp://127.0.0.1:0', '--chat'], {
      env,
      stdin: 'ignore',
    });
    address = (await waitForText(server, /^ {2}(tcp:\/\/\S+)$/m, 'stdout'))[1]!;
  });
  after(async () => {
    await server.stop();
    await killAll();
    await state.cleanup();
  });

  /** Runs `sockit ARGS` on a pseudo-terminal, typing `steps` (expect, send pairs). */
  async function onTerminal(
    python: string,
    steps: string[],
    args: string[],
  ): Promise<{ output: string; code: number }> {
    const { stdout } = await run(python, [PTY_RUN, ...steps, '--', process.execPath, CLI, ...args], {
      env,
      timeout: 60_000,
    });
    return JSON.parse(stdout) as { output: string; code: number };
  }

  it('echo: Ctrl-C exits 130 and Ctrl-D exits 0, each leaving the cursor on a fresh line', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const interrupted = await onTerminal(python, ['>>: ', 'hi\\r', '>>: ', '\\x03'], ['echo', address]);
    assert.equal(interrupted.code, 130);
    assert.match(interrupted.output, /hi\r\n.*>>: .*\r\n$/s);
    const ended = await onTerminal(python, ['>>: ', '\\x04'], ['echo', address]);
    assert.equal(ended.code, 0);
    assert.match(ended.output, />>: .*\r\n$/s);
  });

  it('chat: Ctrl-C exits 130, Ctrl-D exits 0, on a fresh line', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const interrupted = await onTerminal(python, ['you> ', '\\x03'], ['chat', address, '--name', 'you']);
    assert.equal(interrupted.code, 130);
    assert.match(interrupted.output, /you> .*\r\n$/s);
    const ended = await onTerminal(python, ['me> ', '\\x04'], ['chat', address, '--name', 'me']);
    assert.equal(ended.code, 0);
    assert.match(ended.output, /me> .*\r\n$/s);
  });

  it('udp: a lost reply is reported and the prompt stays', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const dgram = await import('node:dgram');
    const silent = dgram.createSocket('udp4'); // receives and never answers: every reply is lost
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      const port = silent.address().port;
      const result = await onTerminal(
        python,
        ['>>: ', 'one\\r', 'TIMEOUT', '', '>>: ', 'two\\r', 'TIMEOUT', '', '>>: ', '\\x03'],
        ['udp', `127.0.0.1:${port}`, '--timeout', '100ms', '--retries', '0'],
      );
      assert.equal(result.code, 130);
      assert.equal(result.output.match(/sockit: TIMEOUT: /g)?.length, 2, result.output);
    } finally {
      silent.close();
    }
  });
});
