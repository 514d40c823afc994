import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { dial, killAll, readAll, sockit, startListen, tempDir, waitForText } from './helpers.js';

/** Sends `input`, half-closes, and returns everything the listener's process answered. */
async function converse(port: number, input: string | Buffer): Promise<string> {
  const socket = await dial(port, '127.0.0.1', { allowHalfOpen: true });
  const answer = readAll(socket);
  socket.end(input);
  return (await answer).toString();
}

describe('listen/connect --exec and --sh-exec', () => {
  after(killAll);

  it('--exec runs argv without a shell and bridges both directions', async () => {
    const listener = await startListen(['127.0.0.1:0', '--exec', 'tr', 'a-z', 'A-Z']);
    assert.equal(await converse(listener.port, 'hello; echo $HOME\n'), 'HELLO; ECHO $HOME\n');
    const exit = await listener.exited;
    assert.equal(exit.code, 0, listener.stderr());
    assert.doesNotMatch(listener.stderr(), /WARNING/, 'loopback needs no warning');
  });

  it('-e is --exec, as in ncat (exec keeps --env long-only, so -e means one thing)', async () => {
    const listener = await startListen(['127.0.0.1:0', '-e', 'tr a-z A-Z']);
    assert.equal(await converse(listener.port, 'short form\n'), 'SHORT FORM\n');
    assert.equal((await listener.exited).code, 0, listener.stderr());
  });

  it('--sh-exec runs through the shell', async () => {
    const listener = await startListen(['127.0.0.1:0', '--sh-exec', 'tr a-z A-Z | rev']);
    assert.equal(await converse(listener.port, 'hello\n'), 'OLLEH\n');
    assert.equal((await listener.exited).code, 0, listener.stderr());
  });

  it('a process that exits early ends that client cleanly and the listener serves the next', async () => {
    // One quoted value is split on blanks (as Ncat does), so arguments may start with a dash.
    const listener = await startListen(['127.0.0.1:0', '-k', '--exec', 'head -c 5']);
    // 4 MiB is far more than `head -c 5` reads before it exits.
    assert.equal(await converse(listener.port, Buffer.alloc(4 * 1024 * 1024, 0x61)), 'aaaaa');
    assert.equal(await converse(listener.port, '0123456789'), '01234');
    assert.equal(listener.child.exitCode, null);
    const exit = await listener.stop();
    assert.equal(exit.code, 0, listener.stderr());
  });

  it('a client whose connection breaks (reset) gets its process group killed', async () => {
    const listener = await startListen(['127.0.0.1:0', '-k', '-v', '--sh-exec', 'sleep 30; echo late']);
    const socket = await dial(listener.port);
    await waitForText(listener, /running sh -c/);
    // A FIN would only close the process's stdin (half-close); a reset means the client is gone.
    socket.resetAndDestroy();
    await waitForText(listener, /exited \(SIGTERM\)/);
    await listener.stop();
  });

  it('a missing program is reported and the one-shot listener exits 1', async () => {
    const listener = await startListen(['127.0.0.1:0', '--exec', '/nonexistent/program']);
    assert.equal(await converse(listener.port, 'x'), '');
    const exit = await listener.exited;
    assert.equal(exit.code, 1);
    assert.match(listener.stderr(), /NOT_FOUND: cannot run \/nonexistent\/program: no such program/);
  });

  it('warns when --exec listens beyond loopback without TLS', async () => {
    const listener = await startListen(['0.0.0.0:0', '--exec', 'cat']);
    assert.match(
      listener.stderr(),
      /WARNING: cat runs for anyone who reaches tcp:\/\/0\.0\.0\.0:\d+.*tls:\/\//,
    );
    await listener.stop();
    const state = await tempDir('sockit-exec-tls-');
    try {
      const secured = await startListen(['tls://0.0.0.0:0', '--exec', 'cat', '--state-dir', state.path]);
      assert.doesNotMatch(secured.stderr(), /WARNING/);
      await secured.stop();
    } finally {
      await state.cleanup();
    }
  });

  it('connect --exec joins a remote peer to a local process', async () => {
    let answer!: (text: string) => void;
    const answered = new Promise<string>((resolve) => {
      answer = resolve;
    });
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      readAll(socket).then((bytes) => answer(bytes.toString()));
      socket.end('question from the server\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const client = sockit(['connect', `127.0.0.1:${port}`, '--exec', 'tr a-z A-Z']);
      assert.equal(await answered, 'QUESTION FROM THE SERVER\n');
      assert.equal((await client.exited).code, 0, client.stderr());
    } finally {
      server.close();
    }
  });
});
