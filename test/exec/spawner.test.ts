import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdtempSync,
  openSync,
  realpathSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ExecPlan } from '../../src/services/exec/policy.js';
import { hasNativeSpawner, type Spawner, startProcess } from '../../src/services/exec/spawner.js';

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
}

const dir = mkdtempSync(join(tmpdir(), 'sockit-spawner-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a program to its end with one spawner; rejects with the start failure (code ENOENT, …). */
function run(
  spawner: Spawner,
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: Buffer } = {},
): Promise<Ran> {
  const plan: ExecPlan = {
    argv: [file, ...args],
    shell: undefined,
    file,
    args,
    cwd: options.cwd ?? dir,
    env: options.env ?? process.env,
    envNames: [],
    timeoutMs: 0,
    stdin: options.input !== undefined,
  };
  return new Promise((resolve, reject) => {
    const child = startProcess(plan, spawner);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.once('error', reject);
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) =>
      resolve({
        code,
        signal,
        pid: child.pid!,
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString(),
      }),
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

async function startError(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

test('the native spawner is built on this machine (npm install builds it; CI runs on Linux)', () => {
  assert.equal(hasNativeSpawner(), true);
});

for (const spawner of ['native', 'node'] as const) {
  describe(`${spawner} spawner: what a command sees and what we see of it`, () => {
    test('exit code, and stdout apart from stderr', async () => {
      const ran = await run(spawner, 'sh', ['-c', 'echo out; echo err >&2; exit 42']);
      assert.deepEqual([ran.code, ran.signal, ran.stdout, ran.stderr], [42, null, 'out\n', 'err\n']);
    });

    test('death by a signal is reported by name', async () => {
      const ran = await run(spawner, 'sh', ['-c', 'kill -TERM $$; sleep 5']);
      assert.deepEqual([ran.code, ran.signal], [null, 'SIGTERM']);
    });

    test('signals are at their defaults: SIGPIPE kills (Node itself ignores it)', async () => {
      const ran = await run(spawner, 'sh', ['-c', 'kill -PIPE $$; sleep 5']);
      assert.equal(ran.signal, 'SIGPIPE');
    });

    test('no signal is blocked, ignored or handled when the command starts', async () => {
      const ran = await run(spawner, 'cat', ['/proc/self/status']);
      for (const field of ['SigBlk', 'SigIgn', 'SigCgt']) {
        assert.match(ran.stdout, new RegExp(`^${field}:\\s+0+$`, 'm'), field);
      }
    });

    test('a working directory that is not there fails the start with ENOENT, naming it', async () => {
      const missing = join(dir, 'no-such-directory');
      const failure = await run(spawner, 'true', [], { cwd: missing }).then(
        () => undefined,
        (error: NodeJS.ErrnoException) => error,
      );
      assert.equal(failure?.code, 'ENOENT');
      if (spawner === 'native') assert.match(failure.message, new RegExp(missing));
    });

    test('stdin is a pipe that ends when we end it', async () => {
      const ran = await run(spawner, 'wc', ['-c'], { input: Buffer.alloc(200_000, 0x61) });
      assert.equal(ran.stdout.trim(), '200000');
    });

    test('without stdin the command reads end-of-file at once', async () => {
      const ran = await run(spawner, 'wc', ['-c']);
      assert.equal(ran.stdout.trim(), '0');
    });

    test('it leads its own session and process group', async () => {
      const ran = await run(spawner, 'cat', ['/proc/self/stat']);
      // pid (comm) state ppid pgrp session …
      const [, , pgrp, session] = ran.stdout.slice(ran.stdout.lastIndexOf(')') + 2).split(' ');
      assert.equal(Number(pgrp), ran.pid);
      assert.equal(Number(session), ran.pid);
    });

    test('its environment is exactly the one given, and its directory the one given', async () => {
      const ran = await run(spawner, 'sh', ['-c', 'echo "$SOCKIT_PROBE|$HOME"; pwd'], {
        env: { PATH: process.env.PATH, SOCKIT_PROBE: 'yes' },
        cwd: dir,
      });
      assert.equal(ran.stdout, `yes|\n${realpathSync(dir)}\n`);
    });

    test("a bare program name is found on the command's PATH", async () => {
      const bin = mkdtempSync(join(dir, 'bin-'));
      writeFileSync(join(bin, 'sockit-probe'), '#!/bin/sh\necho found "$0" "$@"\n', { mode: 0o755 });
      const ran = await run(spawner, 'sockit-probe', ['a b'], { env: { PATH: `${bin}:/usr/bin:/bin` } });
      assert.equal(ran.stdout, `found ${join(bin, 'sockit-probe')} a b\n`);
    });

    test('a missing program is ENOENT; a file that is not executable is EACCES', async () => {
      assert.equal(await startError(run(spawner, 'sockit-no-such-program', [])), 'ENOENT');
      const plain = join(dir, 'not-executable');
      writeFileSync(plain, 'echo no\n');
      chmodSync(plain, 0o644);
      assert.equal(await startError(run(spawner, plain, [])), 'EACCES');
    });

    test('other errnos keep their own name (ETXTBSY here), never a made-up EIO', async () => {
      // A program still open for writing cannot be executed: execve fails with ETXTBSY.
      const busy = join(dir, `being-written-${spawner}`);
      const fd = openSync(busy, 'w', 0o755);
      try {
        writeSync(fd, '#!/bin/sh\necho no\n');
        assert.equal(await startError(run(spawner, busy, [])), 'ETXTBSY');
      } finally {
        closeSync(fd);
      }
    });
  });
}

test('native spawner: the server keeps its own signal mask and handlers across a spawn', async () => {
  // Every signal is blocked around the clone; were the mask not restored, this one would wait.
  await run('native', 'true', []);
  // A signal listener does not keep the loop alive: the timer does, and bounds the wait.
  let timer: NodeJS.Timeout | undefined;
  const delivered = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error('SIGUSR2 was not delivered within 5 s')), 5000);
    process.once('SIGUSR2', () => resolve());
  });
  process.kill(process.pid, 'SIGUSR2');
  await delivered.finally(() => clearTimeout(timer));
});

/**
 * A server may inherit descriptors without close-on-exec (a supervisor's socket, the pipe of
 * whoever started it): Node never marks those, so only the spawner can keep them from commands.
 * A shell opens fd 9 (plain open: no close-on-exec) and execs a Node that runs
 * `ls -l /proc/SH/fd` through the native spawner; the command must have 0, 1 and 2 only.
 */
for (const way of ['close_range', 'closing each descriptor (no close_range)'] as const) {
  test(`native spawner: a descriptor the server inherited without close-on-exec is not passed on (${way})`, async () => {
    const spawner = fileURLToPath(new URL('../../src/services/exec/spawner.js', import.meta.url));
    const script = [
      `import { startProcess } from ${JSON.stringify(spawner)};`,
      "const plan = { argv: [], file: 'sh', args: ['-c', 'ls -l /proc/$$/fd'], cwd: '/', env: process.env, envNames: [], timeoutMs: 0, stdin: false };",
      "const child = startProcess(plan, 'native');",
      "child.stdout.on('data', (chunk) => process.stdout.write(chunk));",
      "child.stderr.on('data', (chunk) => process.stderr.write(chunk));",
    ].join('\n');
    const holder = spawn(
      'sh',
      ['-c', 'exec "$0" --input-type=module -e "$1" 9</dev/null', process.execPath, script],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: way === 'close_range' ? process.env : { ...process.env, SOCKIT_NO_CLOSE_RANGE: '1' },
      },
    );
    const output: Buffer[] = [];
    holder.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    holder.stderr.on('data', (chunk: Buffer) => output.push(chunk));
    const code = await new Promise<number | null>((resolve) => holder.once('close', resolve));
    const listing = Buffer.concat(output).toString();
    assert.equal(code, 0, listing);
    const descriptors = [...listing.matchAll(/ (\d+) -> /g)].map((match) => Number(match[1]));
    assert.deepEqual(descriptors.sort(), [0, 1, 2], listing);
  });
}
