/**
 * What a command's request sees on the wire and what the command sees as its stdio: `started`
 * held for the output or exit that follows it (one write for a short command), the plan of a
 * request in the default directory made without a promise, and the kinds of descriptors the
 * native spawner hands the command (pipes for output, /dev/null or a socket for stdin).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SockitError } from '../../src/errors.js';
import type { Frame } from '../../src/protocol/frame.js';
import { resolveExecOptions } from '../../src/services/exec/options.js';
import { execRequestFields, planExec } from '../../src/services/exec/policy.js';
import { hasNativeSpawner } from '../../src/services/exec/spawner.js';
import { tempDir } from '../helpers.js';
import { nodeArgv, startExec } from './helpers.js';

/** Runs `argv` as a raw request and returns the types of the frames it got, in order. */
async function frameTypes(
  env: Awaited<ReturnType<typeof startExec>>,
  header: Record<string, unknown>,
): Promise<{ types: string[]; frames: Frame[] }> {
  const request = env.client.open({ type: 'exec', ...header }, undefined, {
    final: (reply) => reply.type === 'exit',
  });
  const frames: Frame[] = [];
  request.onFrame = (frame) => {
    frames.push(frame);
  };
  const last = await request.done;
  frames.push(last);
  return { types: frames.map((frame) => frame.header.type), frames };
}

describe('exec: frames of a request', { timeout: 30_000 }, () => {
  let env: Awaited<ReturnType<typeof startExec>>;
  before(async () => {
    env = await startExec();
  });
  after(async () => {
    await env?.stop();
  });

  test('started comes first, then the output, then exit, for a command with output and one without', async () => {
    const quiet = await frameTypes(env, { argv: ['true'] });
    assert.deepEqual(quiet.types, ['started', 'exit']);
    assert.ok(Number(quiet.frames[0]!.header.pid) > 0);
    const talking = await frameTypes(env, { argv: ['sh', '-c', 'echo out; echo err >&2'] });
    assert.equal(talking.types[0], 'started');
    assert.equal(talking.types.at(-1), 'exit');
    assert.deepEqual(talking.types.slice(1, -1).sort(), ['stderr', 'stdout']);
  });

  test('the collected form still reports the pid of a short command', async () => {
    const result = await env.client.exec(['true']);
    assert.equal(result.code, 0);
    assert.ok(typeof result.pid === 'number' && result.pid > 0);
  });

  test('a command that runs on without output gets its started while it runs', async () => {
    const remote = env.client.spawn(['sleep', '1000'], { stdin: false });
    let exited = false;
    void remote.exited.then(
      () => {
        exited = true;
      },
      () => {
        exited = true;
      },
    );
    const pid = await remote.started;
    assert.ok(pid > 0);
    assert.equal(exited, false, 'started arrived while the command runs, not with its exit');
    remote.cancel();
    await assert.rejects(remote.exited, (error: SockitError) => error.code === 'CANCELLED');
  });

  test('a command that cannot start gets its error and no started', async () => {
    await assert.rejects(frameTypes(env, { argv: ['/nonexistent/program'] }), (error: SockitError) => {
      assert.equal(error.code, 'NOT_FOUND');
      return true;
    });
  });
});

describe(
  'exec: the stdio a command gets (native spawner)',
  { timeout: 30_000, skip: !hasNativeSpawner() },
  () => {
    let env: Awaited<ReturnType<typeof startExec>>;
    before(async () => {
      env = await startExec({ spawner: 'native' });
    });
    after(async () => {
      await env?.stop();
    });

    const SHOW_STDIO =
      "const fs = require('fs'); console.log([0, 1, 2].map((fd) => fs.readlinkSync('/proc/self/fd/' + fd)).join(' '))";

    test('without stdin: /dev/null for stdin, pipes for stdout and stderr', async () => {
      const result = await env.client.exec(nodeArgv(SHOW_STDIO));
      assert.equal(result.code, 0, result.stderr.toString());
      const [stdin, stdout, stderr] = result.stdout.toString().trim().split(' ');
      assert.equal(stdin, '/dev/null');
      assert.match(stdout!, /^pipe:\[\d+\]$/);
      assert.match(stderr!, /^pipe:\[\d+\]$/);
    });

    test('with stdin: a socket for stdin, which reaches end-of-file when the input ends', async () => {
      const result = await env.client.exec(
        nodeArgv(
          `${SHOW_STDIO}; let n = 0; process.stdin.on('data', (c) => { n += c.length; }).on('end', () => console.log(n));`,
        ),
        { input: 'four' },
      );
      assert.equal(result.code, 0, result.stderr.toString());
      const [stdio, count] = result.stdout.toString().trim().split('\n');
      const [stdin, stdout] = stdio!.split(' ');
      assert.match(stdin!, /^socket:\[\d+\]$/);
      assert.match(stdout!, /^pipe:\[\d+\]$/);
      assert.equal(count, '4');
    });
  },
);

describe('exec: planning a request', { timeout: 10_000 }, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('sockit-plan-');
  });
  after(async () => {
    await dir?.cleanup();
  });

  test('in the default directory, once checked, the plan comes back at once; a cwd takes a promise', async () => {
    const options = resolveExecOptions({ allow: 'any', cwd: dir.path });
    const fields = execRequestFields({ type: 'exec', argv: ['true'] });
    const first = planExec(fields, options);
    assert.ok(first instanceof Promise, 'the default directory is checked once, with I/O');
    assert.equal((await first).cwd, dir.path);
    const again = planExec(fields, options);
    assert.ok(!(again instanceof Promise), 'then no I/O is needed');
    assert.equal(again.cwd, dir.path);
    const elsewhere = planExec(execRequestFields({ type: 'exec', argv: ['true'], cwd: '.' }), options);
    assert.ok(elsewhere instanceof Promise);
  });

  test('a refusal throws at once when no I/O was needed', () => {
    const options = resolveExecOptions({ allow: ['ls'] });
    assert.throws(
      () => planExec(execRequestFields({ type: 'exec', argv: ['true'] }), options),
      (error: SockitError) => error.code === 'FORBIDDEN',
    );
  });
});

describe('exec: timeouts on one shared timer', { timeout: 20_000 }, () => {
  test('a shorter timeout started after a longer one still fires first, and each command sees its own', async () => {
    const env = await startExec();
    try {
      const long = env.client.exec(['sleep', '1000'], { timeoutMs: 1000 });
      const short = env.client.exec(['sleep', '1000'], { timeoutMs: 100 });
      const first = await Promise.race([long.then(() => 'long'), short.then(() => 'short')]);
      assert.equal(first, 'short');
      const [longResult, shortResult] = await Promise.all([long, short]);
      assert.equal(shortResult.timedOut, true);
      assert.equal(longResult.timedOut, true);
      assert.ok(longResult.durationMs >= 950, `the long one ran its 1 s (${longResult.durationMs} ms)`);
    } finally {
      await env.stop();
    }
  });

  test('a command that ends first leaves no deadline behind to fire', async () => {
    const env = await startExec();
    try {
      const quick = await env.client.exec(['true'], { timeoutMs: 100 });
      assert.equal(quick.timedOut, false);
      // A later command with a longer timeout is not killed at the first one's deadline: it runs
      // (cat, until its stdin ends) while a third command started after the first times out
      // at 100 ms, the event that says the first one's deadline is past too.
      const later = env.client.spawn(['cat'], { timeoutMs: 5000 });
      await later.started;
      assert.equal((await env.client.exec(['sleep', '1000'], { timeoutMs: 100 })).timedOut, true);
      later.stdin!.end();
      const exit = await later.exited;
      assert.equal(exit.timedOut, false);
      assert.equal(exit.code, 0);
    } finally {
      await env.stop();
    }
  });
});
