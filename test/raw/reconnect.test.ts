/**
 * `sockit connect --reconnect`: the listening process is killed and a new one started on the
 * same port; the client says so, redials with backoff, sends what was typed meanwhile first,
 * and the session goes on. Combinations that cannot reconnect are refused.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { runCli } from '../helpers.js';
import { killAll, sockit, startListen, waitForText } from './helpers.js';

describe('sockit connect --reconnect', { timeout: 60_000 }, () => {
  after(killAll);

  it('redials a restarted server on the same port and sends the queued input first', async () => {
    const first = await startListen(['127.0.0.1:0', '-v']);
    const client = sockit(['connect', '--reconnect', first.address]);
    client.child.stdin!.write('one\n');
    await waitForText(first, /^one$/m, 'stdout');

    first.child.kill('SIGKILL');
    await first.exited;
    await waitForText(client, /sockit: connection lost \(.*\)\nsockit: reconnecting in \d+ ms/);
    // Typed while disconnected: kept for the next connection.
    client.child.stdin!.write('two\n');

    const second = await startListen([`127.0.0.1:${first.port}`, '-v']);
    await waitForText(client, /sockit: reconnected/);
    await waitForText(second, /^two$/m, 'stdout');
    second.child.stdin!.write('from the new server\n');
    await waitForText(client, /^from the new server$/m, 'stdout');

    // The usual half-close ending: our EOF, then the server's.
    client.child.stdin!.end('three\n');
    await waitForText(second, /^three$/m, 'stdout');
    second.child.stdin!.end();
    assert.equal((await client.exited).code, 0, client.stderr());
    assert.equal((await second.exited).code, 0, second.stderr());
    assert.doesNotMatch(second.stdout().toString(), /one/);
  });

  it('gives up after --reconnect-max failed attempts with the last error', async () => {
    const gone = await startListen(['127.0.0.1:0']);
    gone.child.kill('SIGKILL');
    await gone.exited;
    const result = await runCli(['connect', '--reconnect', '--reconnect-max', '2', gone.address]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /attempt 1 failed \(.*refused.*\); reconnecting in \d+ ms/);
    assert.match(result.stderr, /CONNECT_FAILED: .*refused/);
  });

  it('refuses what cannot reconnect', async () => {
    for (const [args, message] of [
      [['--exec', 'cat'], /--reconnect relays stdin\/stdout/],
      [['-i', '5s'], /--idle-timeout ends the session/],
      [['-u'], /--reconnect needs a stream/],
      [['--reconnect-max', '0'], /--reconnect-max must be/],
    ] as const) {
      const result = await runCli(['connect', '--reconnect', '127.0.0.1:1', ...args]);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });
});
