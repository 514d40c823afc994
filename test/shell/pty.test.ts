/** The exec service's pseudo-terminals through the library: a real pty, its size, signals, policy. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SockitError } from '../../src/errors.js';
import { execService } from '../../src/services/exec/index.js';
import { isDead, startExec, waitUntilDead } from '../exec/helpers.js';
import { tempDir } from '../helpers.js';
import { TextReader } from './helpers.js';

const PTY = { term: 'xterm-256color', rows: 33, cols: 101 };

describe('pty requests', { timeout: 60_000 }, () => {
  let exec: Awaited<ReturnType<typeof startExec>>;
  let audit: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    audit = await tempDir();
    exec = await startExec({
      allowPty: true,
      shellCommand: ['sh'],
      auditFile: join(audit.path, 'audit.jsonl'),
    });
  });
  after(async () => {
    await exec.stop();
    await audit.cleanup();
  });

  test(
    'the command gets a controlling terminal, its own session, TERM and the window size',
    { timeout: 15_000 },
    async () => {
      // /dev/tty opens only for a process with a controlling terminal; ps shows it leads its session.
      const remote = exec.client.spawn(
        ['sh', '-c', 'echo ok > /dev/tty; stty size; echo "$TERM"; ps -o sid=,pid=,tty= -p $$; exit 3'],
        { pty: PTY },
      );
      const output = new TextReader(remote.stdout);
      assert.equal((await remote.exited).code, 3);
      const text = await output.all();
      const lines = text.split('\r\n');
      assert.equal(lines[0], 'ok');
      assert.equal(lines[1], '33 101');
      assert.equal(lines[2], 'xterm-256color');
      const [sid, pid, tty] = lines[3]!.trim().split(/\s+/);
      assert.equal(sid, pid, 'the command leads its own session');
      assert.match(tty!, /^pts\/\d+$/);
    },
  );

  test(
    'a command that closes its terminal and exits later is not hung up: its own exit status comes back',
    { timeout: 15_000 },
    async () => {
      // The master reads EIO as soon as the slave's last descriptor closes; the command is still
      // running then. Hanging the terminal up at that point would kill it with SIGHUP. The command
      // says on one FIFO that it has closed its terminal, then waits on another; a ping round trip
      // lets the server handle the EIO before the test lets the command go on.
      const closed = join(audit.path, 'closed');
      const proceed = join(audit.path, 'proceed');
      execFileSync('mkfifo', [closed, proceed]);
      const remote = exec.client.spawn(
        ['sh', '-c', `echo bye; exec 0<&- 1>&- 2>&-; echo closed > ${closed}; read go < ${proceed}; exit 5`],
        { pty: PTY },
      );
      const output = new TextReader(remote.stdout);
      assert.equal(await readFile(closed, 'utf8'), 'closed\n');
      await exec.client.ping();
      // Opened read-write, which never blocks on a FIFO: a command that was killed meanwhile
      // leaves the test to fail on its exit instead of hanging on the open.
      const go = await open(proceed, 'r+');
      await go.write('go\n');
      const exit = await remote.exited.finally(() => go.close());
      assert.deepEqual([exit.code, exit.signal], [5, null]);
      assert.equal(await output.all(), 'bye\r\n');
    },
  );

  test(
    'a resize frame changes the window size and the program gets SIGWINCH',
    { timeout: 15_000 },
    async () => {
      const remote = exec.client.spawn(
        ['sh', '-c', 'trap "stty size; exit 0" WINCH; echo ready; while :; do sleep 0.05; done'],
        { pty: PTY },
      );
      const output = new TextReader(remote.stdout);
      await output.until(/ready/);
      remote.resize(40, 120);
      assert.match(await output.until(/40 120/), /40 120/);
      assert.equal((await remote.exited).code, 0);
    },
  );

  test(
    'Ctrl-C typed into the terminal interrupts the foreground program, not the shell',
    { timeout: 15_000 },
    async () => {
      const remote = exec.client.spawn({ login: true }, { pty: PTY, env: { PS1: 'PROMPT> ' } });
      const output = new TextReader(remote.stdout);
      // The foreground job says when it runs (the terminal's echo of the line shows $((6*7)), not 42).
      remote.stdin!.write('sh -c "echo in-$((6*7)); exec sleep 100"\r');
      await output.until(/in-42/);
      remote.stdin!.write('\x03');
      await output.until(/\^C[\s\S]*PROMPT> $/);
      remote.stdin!.write('echo "after=$?"\r');
      await output.until(/after=130/);
      remote.stdin!.write('exit 5\r');
      assert.equal((await remote.exited).code, 5);
    },
  );

  test(
    'a command in a terminal is killed with its group when the client disconnects',
    { timeout: 15_000 },
    async () => {
      const client = await exec.connect();
      const remote = client.spawn(['sh', '-c', 'sleep 100 & echo "child=$!"; wait'], { pty: PTY });
      const output = new TextReader(remote.stdout);
      const child = Number((await output.until(/child=\d+\r\n/)).match(/child=(\d+)/)![1]);
      const pid = await remote.started;
      assert.equal(isDead(child), false);
      client.destroy();
      await waitUntilDead(pid);
      await waitUntilDead(child);
    },
  );

  test(
    'the audit log marks terminal and login requests, with what the server ran',
    { timeout: 15_000 },
    async () => {
      const remote = exec.client.spawn({ login: true }, { pty: PTY });
      remote.stdin!.write('exit 0\r');
      await remote.exited;
      const entries = (await readFile(join(audit.path, 'audit.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      const login = entries.findLast((entry) => entry.login === true);
      assert.equal(login.pty, true);
      assert.deepEqual(login.argv, ['sh']);
      assert.equal(login.outcome, 'exit');
    },
  );

  test('bad pty fields and resize frames are BAD_REQUEST', { timeout: 15_000 }, async () => {
    for (const pty of [
      { term: 'xterm; rm -rf /', rows: 24, cols: 80 },
      { term: 'xterm', rows: 0, cols: 80 },
      { term: 'xterm', rows: 24, cols: 70000 },
    ]) {
      const remote = exec.client.spawn(['true'], { pty });
      await assert.rejects(remote.exited, (error: SockitError) => error.code === 'BAD_REQUEST');
    }
    const remote = exec.client.spawn(['sh', '-c', 'echo ready; sleep 100'], { pty: PTY });
    await new TextReader(remote.stdout).until(/ready/);
    remote.resize(0, 10);
    await assert.rejects(remote.exited, (error: SockitError) => error.code === 'BAD_REQUEST');
  });
});

describe('pty policy', { timeout: 30_000 }, () => {
  test(
    'a server without allowPty refuses terminals and login shells (FORBIDDEN)',
    { timeout: 15_000 },
    async () => {
      const exec = await startExec();
      try {
        await assert.rejects(
          exec.client.spawn(['true'], { pty: PTY }).exited,
          (error: SockitError) => error.code === 'FORBIDDEN' && /--allow-pty/.test(error.message),
        );
        await assert.rejects(
          exec.client.spawn({ login: true }).exited,
          (error: SockitError) => error.code === 'FORBIDDEN',
        );
      } finally {
        await exec.stop();
      }
    },
  );

  test(
    'an allow-list applies to terminals and to the login shell; TERM passes without envAllow',
    { timeout: 15_000 },
    async () => {
      const exec = await startExec({ allow: ['sh'], allowPty: true, shellCommand: ['bash', '--norc'] });
      try {
        await assert.rejects(
          exec.client.spawn(['id'], { pty: PTY }).exited,
          (error: SockitError) => error.code === 'FORBIDDEN',
        );
        await assert.rejects(
          exec.client.spawn({ login: true }, { pty: PTY }).exited,
          (error: SockitError) => error.code === 'FORBIDDEN' && /bash/.test(error.message),
        );
        const remote = exec.client.spawn(['sh', '-c', 'echo "$TERM"'], { pty: { ...PTY, term: 'vt100' } });
        assert.match(await new TextReader(remote.stdout).until(/\r\n/), /^vt100\r\n/);
        assert.equal((await remote.exited).code, 0);
      } finally {
        await exec.stop();
      }
    },
  );

  test("the login shell without shellCommand is the user's, started as a login shell", async () => {
    const exec = await startExec({ allowPty: true });
    try {
      const remote = exec.client.spawn({ login: true }, { pty: PTY });
      // A login shell's $0 starts with "-", as login(1) and sshd start it.
      remote.stdin!.write('echo "zero=$0"; exit\r');
      const text = await new TextReader(remote.stdout).until(/zero=-\w+\r\n/);
      assert.match(text, /zero=-\w+/);
      await remote.exited;
    } finally {
      await exec.stop();
    }
  });

  test(
    'allowPty needs the native addon: a clear INVALID_OPTION without it',
    { timeout: 15_000 },
    async () => {
      // Checked in a child so this process keeps its addon loaded.
      const { runCli } = await import('../helpers.js');
      const state = await tempDir();
      try {
        const result = await runCli(
          ['serve', '--exec', '--allow-pty', '--state-dir', state.path, 'tcp://127.0.0.1:0'],
          {
            env: { SOCKIT_NO_NATIVE: '1', HOME: state.path },
            timeoutMs: 15_000,
          },
        );
        assert.equal(result.code, 2);
        assert.match(result.stderr, /--allow-pty.*pseudo-terminals are unavailable here/);
      } finally {
        await state.cleanup();
      }
      assert.throws(
        () => execService({ allow: 'any', shellCommand: [] }),
        (error: SockitError) => error.code === 'INVALID_OPTION',
      );
    },
  );
});
