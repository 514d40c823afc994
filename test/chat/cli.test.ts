import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chatService } from '../../src/services/chat.js';
import { echoService } from '../../src/services/echo.js';
import { startServer, TEST_TOKEN, tempDir } from '../helpers.js';
import { killAll, sockit, waitForText } from '../raw/helpers.js';

describe('sockit chat and serve --chat', () => {
  let started: Awaited<ReturnType<typeof startServer>>;
  const env = { SOCKIT_TOKEN: TEST_TOKEN };
  before(async () => {
    started = await startServer({ services: [echoService(), chatService()] });
  });
  after(async () => {
    await killAll();
    await started.stop();
  });

  it('two people talk; /who lists members, /quit leaves, a taken name is refused', async () => {
    const alice = sockit(['chat', started.address, '--name', 'alice', '--state-dir', started.stateDir], {
      env,
    });
    await waitForText(alice, /\* joined lobby as alice/, 'stdout');
    const bob = sockit(['chat', started.address, '--name', 'bob', '--state-dir', started.stateDir], { env });
    await waitForText(bob, /\* joined lobby as bob; here: alice, bob/, 'stdout');
    await waitForText(alice, /\* bob joined/, 'stdout');

    alice.child.stdin!.write('hello bob\n');
    await waitForText(bob, /<alice> hello bob/, 'stdout');
    await waitForText(alice, /<alice> hello bob/, 'stdout'); // our own line comes back in room order

    bob.child.stdin!.write('/who\n');
    await waitForText(bob, /\* in lobby: alice, bob/, 'stdout');

    const impostor = sockit(['chat', started.address, '--name', 'bob', '--state-dir', started.stateDir], {
      env,
      stdin: 'ignore',
    });
    assert.equal((await impostor.exited).code, 1);
    assert.match(impostor.stderr(), /CONFLICT: the name "bob" is taken in room "lobby"; pick another name/);

    bob.child.stdin!.write('/quit\n');
    assert.equal((await bob.exited).code, 0, bob.stderr());
    await waitForText(alice, /\* bob left/, 'stdout');
    alice.child.stdin!.end();
    assert.equal((await alice.exited).code, 0, alice.stderr());
  });

  it('serve --chat runs the chat service', async () => {
    const state = await tempDir('sockit-chat-serve-');
    try {
      const server = sockit(['serve', '127.0.0.1:0', '--chat', '--state-dir', state.path], {
        stdin: 'ignore',
      });
      const banner = await waitForText(server, /serving (.*) on:\n\s+(\S+)/, 'stdout');
      assert.match(banner[1]!, /\bchat\b/);
      const client = sockit([
        'chat',
        banner[2]!,
        '--name',
        'solo',
        '--room',
        'r1',
        '--state-dir',
        state.path,
      ]);
      await waitForText(client, /\* joined r1 as solo/, 'stdout');
      client.child.stdin!.end('anyone?\n');
      await waitForText(client, /<solo> anyone\?/, 'stdout');
      assert.equal((await client.exited).code, 0, client.stderr());
      await server.stop();
    } finally {
      await state.cleanup();
    }
  });
});
