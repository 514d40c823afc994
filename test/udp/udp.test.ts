import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectUdp, listenUdp, MAX_DATAGRAM_BYTES, udpRequest } from '../../src/index.js';
import { parseAddress } from '../../src/transport/address.js';
import { killAll, type Listening, launch, sockit, startListen, waitForText } from '../raw/helpers.js';
import { requireTool } from '../tools.js';

const SEEDS = fileURLToPath(new URL('../../../bench/peers/', import.meta.url));

/** Sends `payloads` from one fresh socket and resolves with every reply it gets (until `count`). */
function peer(port: number, payloads: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const replies: string[] = [];
    socket.on('message', (message) => {
      replies.push(message.toString());
      if (replies.length === payloads.length) {
        socket.close();
        resolve(replies);
      }
    });
    socket.on('error', reject);
    for (const payload of payloads) socket.send(payload, port, '127.0.0.1');
  });
}

describe('UDP: listen --udp, connect --udp, sockit udp', () => {
  let echo: Listening;
  before(async () => {
    echo = await startListen(['--udp', '127.0.0.1:0', '--echo', 'upper'], { stdin: 'ignore' });
  });
  after(killAll);

  it('listen --udp --echo upper answers 20 peers at once, each reply to its sender', async () => {
    const peers = Array.from({ length: 20 }, (_, index) =>
      peer(
        echo.port,
        Array.from({ length: 5 }, (_, seq) => `peer ${index} datagram ${seq}`),
      ),
    );
    const replies = await Promise.all(peers);
    replies.forEach((received, index) => {
      assert.deepEqual(
        [...received].sort(),
        Array.from({ length: 5 }, (_, seq) => `PEER ${index} DATAGRAM ${seq}`).sort(),
      );
    });
  });

  it('sockit udp sends one datagram and prints the reply', async () => {
    const run = sockit(['udp', echo.address, 'hello', 'world'], { stdin: 'ignore' });
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(run.stdout().toString(), 'HELLO WORLD\n');
  });

  it('sockit udp without TEXT sends each stdin line and stops at exit', async () => {
    const run = sockit(['udp', echo.address]);
    run.child.stdin!.end('one\n\ntwo\nexit\nthree\n');
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(run.stdout().toString(), 'ONE\nTWO\n');
  });

  it('sockit udp retries after a timeout (the first datagram is "lost")', async () => {
    let seen = 0;
    const lossy = await listenUdp(parseAddress('udp://127.0.0.1:0'), (payload, from) => {
      seen++;
      if (seen === 1) return; // drop the first attempt, as a lossy network would
      void lossy.send(Buffer.from(`answer to ${payload.toString()}`), from);
    });
    try {
      const run = sockit(
        ['udp', `127.0.0.1:${lossy.socket.address().port}`, 'ping', '--timeout', '150ms', '--json'],
        {
          stdin: 'ignore',
        },
      );
      assert.equal((await run.exited).code, 0, run.stderr());
      const reply = JSON.parse(run.stdout().toString());
      assert.equal(reply.reply, 'answer to ping');
      assert.equal(reply.attempts, 2);
    } finally {
      await lossy.close();
    }
  });

  it('gives up with TIMEOUT (exit 4) when nobody answers', async () => {
    const silent = await listenUdp(parseAddress('udp://127.0.0.1:0'), () => {});
    try {
      const run = sockit(
        [
          'udp',
          `127.0.0.1:${silent.socket.address().port}`,
          'anyone?',
          '--timeout',
          '50ms',
          '--retries',
          '2',
        ],
        { stdin: 'ignore' },
      );
      assert.equal((await run.exited).code, 4);
      assert.match(run.stderr(), /TIMEOUT: no reply from udp:\/\/127\.0\.0\.1:\d+ after 3 attempts/);
    } finally {
      await silent.close();
    }
  });

  it('refuses an oversized datagram before sending anything', async () => {
    let received = 0;
    const counter = await listenUdp(parseAddress('udp://127.0.0.1:0'), () => {
      received++;
    });
    try {
      const port = counter.socket.address().port;
      const run = sockit(['udp', `127.0.0.1:${port}`, 'x'.repeat(MAX_DATAGRAM_BYTES + 1)], {
        stdin: 'ignore',
      });
      assert.equal((await run.exited).code, 1);
      assert.match(run.stderr(), /TOO_LARGE: a datagram of 65508 bytes is over the UDP limit of 65507 bytes/);

      const lines = sockit(['connect', '--udp', `127.0.0.1:${port}`]);
      lines.child.stdin!.end(`${'y'.repeat(70_000)}\n`);
      assert.equal((await lines.exited).code, 1);
      assert.match(lines.stderr(), /TOO_LARGE/);

      const connection = await connectUdp(parseAddress(`udp://127.0.0.1:${port}`));
      await assert.rejects(udpRequest(connection, Buffer.alloc(MAX_DATAGRAM_BYTES + 1)), {
        code: 'TOO_LARGE',
      });
      await connection.close();
      // A datagram that fits is the first and only one the server sees.
      await counter.send(Buffer.from('probe'), { address: '127.0.0.1', port });
      await new Promise<void>((resolve) => counter.socket.once('message', () => resolve()));
      assert.equal(received, 1);
    } finally {
      await counter.close();
    }
  });

  it('connect --udp sends each line as a datagram and exits once every one was answered', async () => {
    const run = sockit(['connect', '--udp', echo.address]);
    run.child.stdin!.end('alpha\nbeta\n');
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(run.stdout().toString(), 'ALPHA\nBETA\n');
  });

  it('an unreachable UDP port fails fast with CONNECT_FAILED (exit 3)', async () => {
    const closed = await listenUdp(parseAddress('udp://127.0.0.1:0'), () => {});
    const port = closed.socket.address().port;
    await closed.close();
    const run = sockit(['udp', `127.0.0.1:${port}`, 'hello', '--timeout', '2s'], { stdin: 'ignore' });
    assert.equal((await run.exited).code, 3, run.stderr());
    assert.match(run.stderr(), /nothing is listening there/);
  });

  it("serves the seeds' Python UDP client, and sockit udp talks to the seeds' Python UDP server", async (t) => {
    const python3 = requireTool(t, 'python3');
    if (!python3) return;
    const client = launch(python3, [`${SEEDS}udp_echo_client.py`, '127.0.0.1', String(echo.port)]);
    client.child.stdin!.end('hello\nworld\nexit\n');
    assert.equal((await client.exited).code, 0, client.stderr());
    assert.match(
      client.stdout().toString(),
      /收到服务端发来的消息 b'HELLO'[\s\S]*收到服务端发来的消息 b'WORLD'/,
    );

    const server = launch(python3, [`${SEEDS}udp_echo_server.py`, '127.0.0.1', '0']);
    const ready = await waitForText(server, /ready (\d+)/, 'stdout');
    const run = sockit(['udp', `127.0.0.1:${ready[1]}`, 'from sockit'], { stdin: 'ignore' });
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.equal(run.stdout().toString(), 'FROM SOCKIT\n');
    await server.stop();
  });

  it('socat talks to listen --udp', async (t) => {
    const socat = requireTool(t, 'socat');
    if (!socat) return;
    const client = launch(socat, ['-', `UDP:127.0.0.1:${echo.port}`]);
    client.child.stdin!.end('from socat\n');
    assert.equal((await client.exited).code, 0, client.stderr());
    assert.equal(client.stdout().toString(), 'FROM SOCAT\n');
  });

  it('listen --udp relays datagrams to stdout and stdin lines to the last sender', async () => {
    const relay = await startListen(['--udp', '127.0.0.1:0', '-v']);
    const socket = dgram.createSocket('udp4');
    try {
      const reply = new Promise<string>((resolve) =>
        socket.once('message', (message) => resolve(message.toString())),
      );
      socket.send('datagram for stdout\n', relay.port, '127.0.0.1');
      await waitForText(relay, /datagram for stdout/, 'stdout');
      relay.child.stdin!.write('line for the peer\n');
      assert.equal(await reply, 'line for the peer\n');
    } finally {
      socket.close();
      await relay.stop();
    }
  });
});
