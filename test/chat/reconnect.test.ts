/**
 * `sockit chat --reconnect`: the server process is killed and started again on the same port;
 * the client says so, reconnects with backoff and rejoins the room under the same name. A name
 * taken while the client was away is refused with a sentence that says what to do.
 */
import assert from 'node:assert/strict';
import { createServer, connect as dialTcp, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { connect } from '../../src/client/client.js';
import { chatService } from '../../src/services/chat.js';
import { startServer, TEST_TOKEN, tempDir, untilChat } from '../helpers.js';
import { killAll, type Running, sockit, waitForText } from '../raw/helpers.js';

/** `sockit serve --chat` on `listen`, its address once it listens. */
async function serveChat(listen: string, stateDir: string): Promise<{ server: Running; address: string }> {
  // The token is the state dir's, which the client reads too.
  const server = sockit(['serve', listen, '--chat', '--state-dir', stateDir], { stdin: 'ignore' });
  const banner = await waitForText(server, /serving .* on:\n\s+(\S+)/, 'stdout');
  return { server, address: banner[1]! };
}

describe('sockit chat --reconnect', { timeout: 60_000 }, () => {
  after(killAll);

  it('rejoins the room with the same name after the server is killed and restarted', async () => {
    const state = await tempDir('sockit-chat-reconnect-');
    try {
      const first = await serveChat('tcp://127.0.0.1:0', state.path);
      const alice = sockit([
        'chat',
        first.address,
        '--name',
        'alice',
        '--room',
        'r1',
        '--reconnect',
        '--state-dir',
        state.path,
      ]);
      await waitForText(alice, /\* joined r1 as alice/, 'stdout');
      first.server.child.kill('SIGKILL');
      await first.server.exited;
      await waitForText(alice, /sockit: the server closed the connection\nsockit: reconnecting in \d+ ms/);
      // Typed while away: refused, not queued for minutes.
      alice.child.stdin!.write('anyone?\n');
      await waitForText(alice, /\* not connected \(reconnecting\); not sent/, 'stdout');

      // The same port again (first listened on port 0).
      const second = await serveChat(first.address, state.path);
      await waitForText(alice, /sockit: reconnected; rejoined r1 as alice/);
      await waitForText(alice, /\* rejoined r1 as alice; here: alice/, 'stdout');
      alice.child.stdin!.write('back\n');
      await waitForText(alice, /<alice> back/, 'stdout');
      alice.child.stdin!.end();
      assert.equal((await alice.exited).code, 0, alice.stderr());
      await second.server.stop();
    } finally {
      await state.cleanup();
    }
  });

  it('says clearly when its name was taken meanwhile, and exits 1', async () => {
    const started = await startServer({ services: [chatService()] });
    // A relay the test can cut: while `open` is false it hangs up on every connection.
    let open = true;
    const relayed = new Set<Socket>();
    const relay = createServer((socket) => {
      if (!open) return socket.destroy();
      const port = Number(started.address.split(':').pop());
      const upstream = dialTcp(port, '127.0.0.1');
      relayed.add(socket);
      for (const [a, b] of [
        [socket, upstream],
        [upstream, socket],
      ] as const) {
        a.pipe(b);
        a.on('error', () => b.destroy());
        a.on('close', () => b.destroy());
      }
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayPort = (relay.address() as { port: number }).port;
    try {
      const alice = sockit(
        [
          'chat',
          `tcp://127.0.0.1:${relayPort}`,
          '--name',
          'alice',
          '--reconnect',
          '--state-dir',
          started.stateDir,
        ],
        { env: { SOCKIT_TOKEN: TEST_TOKEN } },
      );
      await waitForText(alice, /\* joined lobby as alice/, 'stdout');
      open = false;
      for (const socket of relayed) socket.destroy();
      await waitForText(alice, /attempt 1 failed \(.*\); reconnecting in \d+ ms/);
      // Someone else takes the name on the server itself.
      const impostor = await connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
      try {
        const room = await impostor.chat({ name: 'alice' });
        await untilChat(room, () => room.members.has('alice'));
        open = true;
        const { code } = await alice.exited;
        assert.equal(code, 1, alice.stderr());
        assert.match(
          alice.stderr(),
          /CONFLICT: cannot rejoin room "lobby" as "alice": someone took the name while we were away; run again with another --name/,
        );
      } finally {
        impostor.destroy();
      }
    } finally {
      await new Promise((resolve) => relay.close(resolve));
      await started.stop();
    }
  });
});
