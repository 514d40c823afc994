import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SockitError } from '../../src/errors.js';
import { describeOverTransports, tempDir } from '../helpers.js';
import { nodeArgv, startExec, zombieChildren } from './helpers.js';

describeOverTransports('exec: commands, exit codes, output', (transport) => {
  let env: Awaited<ReturnType<typeof startExec>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    env = await startExec({}, { transport });
    dir = await tempDir('sockit-exec-');
  });
  after(async () => {
    await env?.stop();
    await dir?.cleanup();
  });

  test('exit codes 0, 1 and 42 come back as they are', async () => {
    for (const code of [0, 1, 42]) {
      const result = await env.client.exec(['sh', '-c', `exit ${code}`]);
      assert.equal(result.code, code);
      assert.equal(result.signal, null);
      assert.equal(result.timedOut, false);
      assert.equal(result.truncated, false);
      assert.equal(typeof result.durationMs, 'number');
      assert.equal(typeof result.pid, 'number');
    }
  });

  test('death by a signal is reported as the signal, with no code', async () => {
    const result = await env.client.exec(['sh', '-c', 'kill -TERM $$']);
    assert.equal(result.code, null);
    assert.equal(result.signal, 'SIGTERM');
  });

  test('stderr is kept apart from stdout', async () => {
    const result = await env.client.exec(['sh', '-c', 'echo out1; echo err1 >&2; echo out2; echo err2 >&2']);
    assert.equal(result.stdout.toString(), 'out1\nout2\n');
    assert.equal(result.stderr.toString(), 'err1\nerr2\n');
  });

  test('argv runs without a shell: metacharacters are plain bytes', async () => {
    const marker = join(dir.path, 'marker');
    const args = [
      'a;b',
      '|',
      'wc',
      '$(touch ' + marker + ')',
      '`touch ' + marker + '`',
      "'q'",
      '"d"',
      '&&',
      '>',
      'f',
      '*',
    ];
    const result = await env.client.exec(['echo', ...args], { cwd: dir.path });
    assert.equal(result.stdout.toString(), `${args.join(' ')}\n`);
    assert.equal(existsSync(marker), false);
    assert.equal(existsSync(join(dir.path, 'f')), false);
  });

  test('a missing program is NOT_FOUND, an error for the request and not an exit', async () => {
    await assert.rejects(env.client.exec(['sockit-no-such-program-xyz']), (error: SockitError) => {
      assert.equal(error.code, 'NOT_FOUND');
      assert.match(error.message, /sockit-no-such-program-xyz/);
      return true;
    });
    await assert.rejects(env.client.exec([join(dir.path, 'nope')]), { code: 'NOT_FOUND' });
    // The connection is still good afterwards.
    assert.equal((await env.client.exec(['true'])).code, 0);
  });

  test('a file that is not executable is FORBIDDEN', async () => {
    await assert.rejects(env.client.exec([dir.path]), { code: 'FORBIDDEN' });
  });

  test('two commands at once on one connection', async () => {
    // The first waits for a line on stdin; the second runs to the end meanwhile.
    const waiting = env.client.spawn(['sh', '-c', 'read line; echo "got $line"']);
    const second = await env.client.exec(['echo', 'second']);
    assert.equal(second.stdout.toString(), 'second\n');
    const output: Buffer[] = [];
    waiting.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    waiting.stdin!.end('first\n');
    const exit = await waiting.exited;
    assert.equal(exit.code, 0);
    assert.equal(Buffer.concat(output).toString(), 'got first\n');
  });

  test('many concurrent commands on one connection all finish', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        env.client.exec(['sh', '-c', `echo ${index}; exit ${index % 5}`]),
      ),
    );
    results.forEach((result, index) => {
      assert.equal(result.stdout.toString(), `${index}\n`);
      assert.equal(result.code, index % 5);
    });
  });

  test('cwd and env per request', async () => {
    const pwd = await env.client.exec(['pwd'], { cwd: dir.path });
    assert.equal(pwd.stdout.toString().trim(), dir.path);
    const printed = await env.client.exec(['sh', '-c', 'printf %s "$SOCKIT_TEST_VALUE"'], {
      env: { SOCKIT_TEST_VALUE: 'a b;c' },
    });
    assert.equal(printed.stdout.toString(), 'a b;c');
  });

  test('a missing working directory is NOT_FOUND', async () => {
    await assert.rejects(env.client.exec(['pwd'], { cwd: join(dir.path, 'missing') }), { code: 'NOT_FOUND' });
  });

  test('the server token is not in a command environment', async () => {
    const result = await env.client.exec(nodeArgv('process.stdout.write(String(process.env.SOCKIT_TOKEN))'));
    assert.equal(result.stdout.toString(), 'undefined');
  });

  test('a shell string is refused unless the server allows shells', async () => {
    await assert.rejects(env.client.exec({ shell: 'echo hi' }), (error: SockitError) => {
      assert.equal(error.code, 'FORBIDDEN');
      assert.match(error.message, /--allow-shell/);
      return true;
    });
  });

  test('malformed requests are BAD_REQUEST and the server keeps serving', async () => {
    for (const header of [
      { type: 'exec' },
      { type: 'exec', argv: [] },
      { type: 'exec', argv: ['echo', 3] },
      { type: 'exec', argv: ['echo', 'a\0b'] },
      { type: 'exec', argv: ['echo'], shell: 'echo' },
      { type: 'exec', argv: ['echo'], env: { 'A=B': 'x' } },
      { type: 'exec', argv: ['echo'], env: { A: 1 } },
      { type: 'exec', argv: ['echo'], timeoutMs: -1 },
      { type: 'exec', argv: ['echo'], stdin: 'yes' },
    ]) {
      await assert.rejects(env.client.call(header), { code: 'BAD_REQUEST' }, JSON.stringify(header));
    }
    assert.equal((await env.client.exec(['true'])).code, 0);
  });

  test('no zombie children are left behind', () => {
    assert.deepEqual(zombieChildren(), []);
  });
});

describe('exec: shells where allowed', () => {
  test('a shell string runs through /bin/sh -c when the server allows it', async () => {
    const env = await startExec({ allowShell: true });
    try {
      const result = await env.client.exec({ shell: 'echo abc | tr a-c x-z; exit 3' });
      assert.equal(result.stdout.toString(), 'xyz\n');
      assert.equal(result.code, 3);
    } finally {
      await env.stop();
    }
  });
});
