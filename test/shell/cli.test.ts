/** `sockit shell` and `sockit exec -t/-tt/-T` without a local terminal (pipes), and their usage errors. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { startExec } from '../exec/helpers.js';
import { runCli, TEST_TOKEN, tempDir } from '../helpers.js';
import { sockit } from '../raw/helpers.js';

describe('sockit shell / exec -t without a local terminal', { timeout: 60_000 }, () => {
  let pty: Awaited<ReturnType<typeof startExec>>;
  let plain: Awaited<ReturnType<typeof startExec>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[], input?: string) =>
    runCli(args, { env, ...(input !== undefined ? { input } : {}), timeoutMs: 20_000 });

  before(async () => {
    pty = await startExec({ allowPty: true, shellCommand: ['sh'] });
    plain = await startExec();
    dir = await tempDir('sockit-shell-cli-');
    env = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
  });
  after(async () => {
    await pty.stop();
    await plain.stop();
    await dir.cleanup();
  });

  test('-tt forces a terminal; piped input ends with ^D, which the terminal reads as end-of-file', async () => {
    const tty = await cli(['exec', '-tt', pty.address, '--', 'tty']);
    assert.equal(tty.code, 0, tty.stderr);
    assert.match(tty.stdout, /^\/dev\/pts\/\d+\r\n$/);
    const cat = await cli(['exec', '-tt', pty.address, '--', 'cat'], 'abc\n');
    assert.equal(cat.code, 0, cat.stderr);
    assert.match(cat.stdout, /abc\r\n/);
  });

  test('a terminal whose local reader goes away (`| head`) ends as a broken pipe: 141, no trace', async () => {
    const running = sockit(['exec', '-tt', pty.address, '--', 'yes'], { env });
    await once(running.child.stdout!, 'data');
    running.child.stdout!.destroy(); // the reader closes its end of the pipe
    const { code } = await running.exited;
    assert.equal(code, 141, running.stderr().toString());
    assert.doesNotMatch(running.stderr().toString(), /at |Error/);
  });

  test('-t without a local terminal warns and runs with pipes; -T never asks for one', async () => {
    const t = await cli(['exec', '-t', pty.address, '--', 'tty']);
    assert.equal(t.code, 1);
    assert.equal(t.stdout, 'not a tty\n');
    assert.match(t.stderr, /no pseudo-terminal: local stdin is not a terminal \(-tt forces one\)/);
    const T = await cli(['exec', '-T', pty.address, '--', 'tty']);
    assert.equal(T.stdout, 'not a tty\n');
    assert.equal(T.stderr, '');
  });

  test("sockit shell reads commands from piped stdin and exits with the shell's status", async () => {
    const result = await cli(['shell', pty.address], 'echo "hi-$((1+1))"\nexit 4\n');
    assert.equal(result.code, 4, result.stderr);
    assert.equal(result.stdout, 'hi-2\n');
    assert.match(result.stderr, /no pseudo-terminal/);
    const forced = await cli(['shell', '-tt', pty.address], 'exit 6\n');
    assert.equal(forced.code, 6, forced.stderr);
  });

  test('a server without --allow-pty refuses: exit 126 with the reason', async () => {
    const result = await cli(['exec', '-tt', plain.address, '--', 'tty']);
    assert.equal(result.code, 126);
    assert.match(result.stderr, /FORBIDDEN: .*--allow-pty/);
    const shell = await cli(['shell', plain.address], 'exit 0\n');
    assert.equal(shell.code, 126);
  });

  test('usage errors exit 2: a terminal with several servers, --shell-command without --allow-pty', async () => {
    const fan = await cli(['exec', '-tt', `${pty.address},${plain.address}`, '--', 'true']);
    assert.equal(fan.code, 2);
    assert.match(fan.stderr, /one server only/);
    const serve = await cli([
      'serve',
      '--exec',
      '--shell-command',
      'sh',
      '--state-dir',
      dir.path,
      'tcp://127.0.0.1:0',
    ]);
    assert.equal(serve.code, 2);
    assert.match(serve.stderr, /--shell-command needs --allow-pty/);
    const stray = await cli(['serve', '--allow-pty', '--state-dir', dir.path, 'tcp://127.0.0.1:0']);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /--allow-pty needs --exec or --exec-allow/);
    const help = await cli(['shell', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout.replace(/\s+/g, ' '), /-tt even without a local terminal/);
  });
});
