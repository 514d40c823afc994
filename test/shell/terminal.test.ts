/**
 * `sockit shell` and `sockit exec -t` in a real terminal: tmux runs the CLI against a `sockit
 * serve` process. Every step waits for an event: the remote bash signals a tmux channel before
 * each prompt (PROMPT_COMMAND: p1, p2, …), the commands typed signal their own, and what cannot
 * (a pager) is watched for in the terminal's output.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, tempDir, waitForLine } from '../helpers.js';
import { missingTool, requireTool } from '../tools.js';
import { cliLine, startTmux, type Tmux } from './helpers.js';

const noTmux = process.env.CI === 'true' ? undefined : missingTool('tmux');

describe('sockit shell and exec -t in a terminal', { skip: noTmux, timeout: 90_000 }, () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let server: ChildProcess;
  let address: string;
  const sessions: Tmux[] = [];

  before(async () => {
    state = await tempDir('sockit-shell-');
    server = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--state-dir',
        state.path,
        '--exec',
        '--allow-pty',
        '--shell-command',
        'bash --norc --noprofile',
        'tcp://127.0.0.1:0',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        // The remote bash announces every prompt on the tmux channel of the session it serves.
        env: {
          ...process.env,
          SOCKIT_TOKEN: '',
          HOME: state.path,
          PS1: '$ ',
          PROMPT_COMMAND: 'n=$((n+1)); $TMUX_CMD wait-for -S p$n',
        },
      },
    );
    [address] = (await waitForLine(server.stdout!, /tcp:\/\/127\.0\.0\.1:\d+/)) as unknown as [string];
    server.stderr!.resume();
  });
  after(async () => {
    for (const session of sessions) await session.kill();
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      await once(server, 'close');
    }
    await state.cleanup();
  });

  /** A terminal running `sockit shell`; when it ends the pane records its exit status and terminal modes. */
  const shellInTmux = (): Promise<Tmux> =>
    cliInTmux((tmuxCmd) => ['shell', '-e', tmuxCmd, '--state-dir', state.path, address]);

  /**
   * A terminal running `sockit ARGS…` with a remote bash that signals its prompts;
   * `args(tmuxCmd)` gets the `TMUX_CMD=…` assignment the remote bash needs for that. When the
   * CLI ends the pane records its exit status and terminal modes.
   */
  async function cliInTmux(args: (tmuxCmd: string) => string[]): Promise<Tmux> {
    const tmux = await startTmux(
      (prefix, dir) =>
        `stty -g > ${dir}/before; ${cliLine(args(`TMUX_CMD=${prefix.replace(/ /g, '\\ ')}`))}; ` +
        // The pane then stays (until kill-server after the suite): a CLI that exits at once must
        // not take the tmux server away before the test's `wait-for ended` reaches it.
        `echo $? > ${dir}/code; stty -g > ${dir}/after; ${prefix} wait-for -S ended; exec sleep 600`,
    );
    sessions.push(tmux);
    await tmux.waitFor('p1');
    // The local terminal is raw while the remote one runs: no echo, no line editing, no signals.
    assert.match(await tmux.paneModes(), /-isig\b[\s\S]*-icanon\b[\s\S]*-echo\b/);
    return tmux;
  }

  const file = (tmux: Tmux, name: string) => readFile(join(tmux.dir, name), 'utf8');

  /**
   * What every remote terminal must do, typed at its shell's prompts p1–p4: report 24 80, see a
   * tmux resize (SIGWINCH reaches the remote foreground job, which records the new size), and
   * take Ctrl-C as a byte for the remote terminal (the foreground job dies with 130, the shell
   * prompts again, p5).
   */
  async function sizeResizeInterrupt(tmux: Tmux): Promise<void> {
    const t = tmux.tmux;
    await tmux.keys(`stty size > ${tmux.dir}/size1`);
    await tmux.waitFor('p2');
    assert.equal((await file(tmux, 'size1')).trim(), '24 80');
    await tmux.keys(
      `sh -c 'trap "stty size > ${tmux.dir}/size2; exit" WINCH; ${t} wait-for -S armed; while :; do sleep 1 & wait $!; done'`,
    );
    await tmux.waitFor('armed');
    await tmux.resize(100, 30);
    await tmux.waitFor('p3');
    assert.equal((await file(tmux, 'size2')).trim(), '30 100');
    await tmux.keys(`sh -c '${t} wait-for -S running; exec sleep 100'`);
    await tmux.waitFor('running');
    await tmux.keys('C-c', { literal: false });
    await tmux.waitFor('p4');
    await tmux.keys(`echo $? > ${tmux.dir}/interrupted`);
    await tmux.waitFor('p5');
    assert.equal((await file(tmux, 'interrupted')).trim(), '130');
  }

  test('size, resize, Ctrl-C, a full-screen program, exit status, terminal restored', async () => {
    const tmux = await shellInTmux();
    await sizeResizeInterrupt(tmux);

    await tmux.keys('top -n 1');
    await tmux.waitFor('p6');
    const screen = await tmux.screen();
    assert.match(screen, /Tasks: +\d+ total/);
    assert.match(screen, /PID\s+USER/);

    await tmux.keys('exit 7');
    await tmux.waitFor('ended');
    assert.equal((await file(tmux, 'code')).trim(), '7');
    assert.equal(await file(tmux, 'after'), await file(tmux, 'before'), 'the local terminal is restored');
  });

  test('exec -t … -- bash: size, resize, Ctrl-C stops the foreground job only, less draws a page', async (context) => {
    if (!requireTool(context, 'less')) return;
    const tmux = await cliInTmux((tmuxCmd) => [
      'exec',
      '-t',
      '--env',
      tmuxCmd,
      '--state-dir',
      state.path,
      address,
      '--',
      'bash',
      '--norc',
      '--noprofile',
    ]);
    await sizeResizeInterrupt(tmux);

    // A pager: one screenful of a longer file, then its prompt (drawn last; %lb is the bottom
    // line's number, so the typed command line never matches), and back to bash at q.
    const lines = Array.from({ length: 100 }, (_, index) => `story line ${index + 1}`);
    await writeFile(join(tmux.dir, 'story.txt'), `${lines.join('\n')}\n`);
    await tmux.onOutput('at line 29 of story', 'drawn');
    await tmux.keys(`less '-Psat line %lb of story' ${tmux.dir}/story.txt`);
    await tmux.waitFor('drawn');
    const page = (await tmux.screen()).trimEnd().split('\n');
    assert.deepEqual(page.slice(0, 29), lines.slice(0, 29), 'one screenful of 30 rows, from the top');
    assert.equal(page.at(-1)!.trim(), 'at line 29 of story', "less's prompt on the last row");
    await tmux.keys('q', { enter: false });
    await tmux.waitFor('p6');
    assert.doesNotMatch(await tmux.screen(), /story line 25/, 'less restored the screen it found');

    await tmux.keys('exit 3');
    await tmux.waitFor('ended');
    assert.equal((await file(tmux, 'code')).trim(), '3');
    assert.equal(await file(tmux, 'after'), await file(tmux, 'before'), 'the local terminal is restored');
  });

  test('the local terminal is restored and the CLI exits 255 when the server is killed', async () => {
    const tmux = await shellInTmux();
    server.kill('SIGKILL');
    await tmux.waitFor('ended');
    assert.equal((await file(tmux, 'code')).trim(), '255');
    assert.equal(await file(tmux, 'after'), await file(tmux, 'before'), 'the local terminal is restored');
  });
});
