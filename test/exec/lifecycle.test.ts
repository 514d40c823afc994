import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SockitError } from '../../src/errors.js';
import { firstLine, isDead, startExec, waitUntilDead, zombieChildren } from './helpers.js';

/** Starts a background grandchild, prints its pid, and waits for it: a command with a child. */
const WITH_GRANDCHILD = ['sh', '-c', 'sleep 1000 & echo $!; wait'];

describe('exec: ending early kills the whole process group', () => {
  let env: Awaited<ReturnType<typeof startExec>>;
  before(async () => {
    env = await startExec();
  });
  after(() => env.stop());

  test('a timeout kills a command that spawned children, grandchild included', async () => {
    const remote = env.client.spawn(WITH_GRANDCHILD, { timeoutMs: 500, stdin: false });
    const leader = await remote.started;
    const grandchild = Number(await firstLine(remote.stdout));
    assert.ok(grandchild > 0);
    assert.equal(isDead(grandchild), false);
    const exit = await remote.exited;
    assert.equal(exit.timedOut, true);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.code, null);
    await waitUntilDead(grandchild);
    await waitUntilDead(leader);
  });

  test('cancel kills the group; the call rejects', async () => {
    const controller = new AbortController();
    const remote = env.client.spawn(WITH_GRANDCHILD, { signal: controller.signal, stdin: false });
    const leader = await remote.started;
    const grandchild = Number(await firstLine(remote.stdout));
    controller.abort();
    await assert.rejects(remote.exited, { code: 'CANCELLED' });
    await waitUntilDead(grandchild);
    await waitUntilDead(leader);
    // The connection carries on.
    assert.equal((await env.client.exec(['true'])).code, 0);
  });

  test("the client's disconnect kills the group", async () => {
    const client = await env.connect();
    const remote = client.spawn(WITH_GRANDCHILD, { stdin: false });
    const leader = await remote.started;
    const grandchild = Number(await firstLine(remote.stdout));
    client.destroy();
    // destroy() aborts what is open (CANCELLED); the server sees the disconnect and kills the group.
    await assert.rejects(remote.exited, { code: 'CANCELLED' });
    await waitUntilDead(grandchild);
    await waitUntilDead(leader);
  });

  test('signals are forwarded: SIGINT, SIGTERM, SIGKILL', async () => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
      const remote = env.client.spawn(['sleep', '1000'], { stdin: false });
      await remote.started;
      assert.equal(remote.kill(signal), true);
      const exit = await remote.exited;
      assert.equal(exit.signal, signal);
      assert.equal(remote.kill(signal), false, 'kill after exit reports false');
    }
  });

  test('a signal reaches the whole group, as Ctrl-C in a terminal does', async () => {
    const remote = env.client.spawn(WITH_GRANDCHILD, { stdin: false });
    await remote.started;
    const grandchild = Number(await firstLine(remote.stdout));
    remote.kill('SIGTERM');
    assert.equal((await remote.exited).signal, 'SIGTERM');
    await waitUntilDead(grandchild);
  });

  test('an invalid signal frame is BAD_REQUEST and the command does not run on unseen', async () => {
    const request = env.client.open({ type: 'exec', argv: ['sleep', '1000'] }, undefined, {
      final: (header) => header.type === 'exit',
    });
    let pid = 0;
    request.onFrame = (frame) => {
      if (frame.header.type === 'started') {
        pid = Number(frame.header.pid);
        request.send({ type: 'signal', signal: 'SIGSTOP' });
      }
    };
    await assert.rejects(request.done, (error: SockitError) => {
      assert.equal(error.code, 'BAD_REQUEST');
      return true;
    });
    assert.ok(pid > 0);
    await waitUntilDead(pid);
  });

  test('a process left running in the group when the command exits is killed', async () => {
    // The background sleep closes its output, so only the group kill can end it.
    const result = await env.client.exec(['sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $!']);
    assert.equal(result.code, 0);
    await waitUntilDead(Number(result.stdout.toString()));
  });

  test('no zombie children are left behind', () => {
    assert.deepEqual(zombieChildren(), []);
  });
});

describe('exec: output limit', () => {
  test('output past the limit kills the command and reports truncated, with exactly the limit sent', async () => {
    const env = await startExec({ maxOutputBytes: 100_000 });
    try {
      const result = await env.client.exec(['yes', 'sockit']);
      assert.equal(result.truncated, true);
      assert.equal(result.signal, 'SIGKILL');
      assert.equal(result.stdout.length + result.stderr.length, 100_000);
      assert.equal(result.stdout.toString(), 'sockit\n'.repeat(20_000).slice(0, 100_000));
    } finally {
      await env.stop();
    }
  });
});

describe('exec: server shutdown', () => {
  test('closing the server kills running commands', async () => {
    const env = await startExec();
    const remote = env.client.spawn(WITH_GRANDCHILD, { stdin: false });
    const leader = await remote.started;
    const grandchild = Number(await firstLine(remote.stdout));
    // No grace period: the shutdown deadline passes at once and open requests are aborted.
    await env.server.close(0);
    await assert.rejects(remote.exited);
    await env.stop();
    await waitUntilDead(grandchild);
    await waitUntilDead(leader);
  });
});
