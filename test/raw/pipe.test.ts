import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closedPort, dial, killAll, readAll, sockit, startListen, tempDir } from './helpers.js';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** A one-connection test server; `onSocket` plays the peer. */
async function peerServer(
  onSocket: (socket: net.Socket) => void,
): Promise<{ port: number; close: () => void }> {
  const server = net.createServer({ allowHalfOpen: true }, onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('raw relay: listen/connect', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    dir = await tempDir('sockit-raw-');
  });
  after(async () => {
    await killAll();
    await dir.cleanup();
  });

  it('carries 100 MB of random bytes from connect to listen byte-exact', async () => {
    const input = join(dir.path, 'in.bin');
    const output = join(dir.path, 'out.bin');
    const data = randomBytes(100 * 1024 * 1024);
    writeFileSync(input, data);
    const outFd = openSync(output, 'w');
    const inFd = openSync(input, 'r');
    try {
      // Listener stdin is /dev/null: it sends nothing and shuts down its side at once.
      const listener = await startListen(['127.0.0.1:0'], { stdin: 'ignore', stdout: outFd });
      const client = sockit(['connect', listener.address], { stdin: inFd });
      const [clientExit, listenerExit] = await Promise.all([client.exited, listener.exited]);
      assert.equal(clientExit.code, 0, client.stderr());
      assert.equal(listenerExit.code, 0, listener.stderr());
    } finally {
      closeSync(outFd);
      closeSync(inFd);
    }
    const received = readFileSync(output);
    assert.equal(received.length, data.length);
    assert.equal(sha256(received), sha256(data));
  });

  it('carries 8 MB from listen to connect byte-exact (the other direction)', async () => {
    const input = join(dir.path, 'in2.bin');
    const data = randomBytes(8 * 1024 * 1024);
    writeFileSync(input, data);
    const inFd = openSync(input, 'r');
    try {
      const listener = await startListen(['127.0.0.1:0'], { stdin: inFd });
      const client = sockit(['connect', listener.address], { stdin: 'ignore' });
      const [clientExit, listenerExit] = await Promise.all([client.exited, listener.exited]);
      assert.equal(clientExit.code, 0, client.stderr());
      assert.equal(listenerExit.code, 0, listener.stderr());
      assert.equal(sha256(client.stdout()), sha256(data));
    } finally {
      closeSync(inFd);
    }
  });

  it('connect: stdin EOF shuts down the write side and the reply after it still arrives', async () => {
    const peer = await peerServer((socket) => {
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
      });
      // The peer answers only after our EOF: proof that we half-closed and kept reading.
      socket.on('end', () => socket.end(`got ${got} bytes after your EOF\n`));
    });
    try {
      const client = sockit(['connect', `127.0.0.1:${peer.port}`]);
      client.child.stdin!.end('twelve bytes');
      const exit = await client.exited;
      assert.equal(exit.code, 0, client.stderr());
      assert.equal(client.stdout().toString(), 'got 12 bytes after your EOF\n');
    } finally {
      peer.close();
    }
  });

  it('listen: stdin EOF shuts down the write side and the client can still answer', async () => {
    const listener = await startListen(['127.0.0.1:0']);
    const socket = await dial(listener.port, '127.0.0.1', { allowHalfOpen: true });
    const fromListener = readAll(socket);
    listener.child.stdin!.end('from the listener\n');
    assert.equal((await fromListener).toString(), 'from the listener\n');
    // We saw the listener's EOF; our side is still open, so we answer now and then end.
    socket.end('answer after your EOF\n');
    const exit = await listener.exited;
    assert.equal(exit.code, 0, listener.stderr());
    assert.equal(listener.stdout().toString(), 'answer after your EOF\n');
  });

  it('connect: keeps sending piped input after the peer shut down its side', async () => {
    const total = 1024 * 1024;
    let received = 0;
    let connected!: () => void;
    const ready = new Promise<void>((resolve) => {
      connected = resolve;
    });
    const done = new Promise<void>((resolve) => {
      void peerServer((socket) => {
        socket.end(); // the peer has nothing to say, but still listens
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
        });
        socket.on('end', () => resolve());
        connected();
      }).then((peer) => {
        const client = sockit(['connect', `127.0.0.1:${peer.port}`]);
        void ready.then(() => client.child.stdin!.end(Buffer.alloc(total, 7)));
        void client.exited.then((exit) => {
          assert.equal(exit.code, 0, client.stderr());
          peer.close();
        });
      });
    });
    await done;
    assert.equal(received, total);
  });

  it('--no-shutdown keeps our write side open after stdin EOF until the peer ends', async () => {
    let sawEndBeforeReply = false;
    const peer = await peerServer((socket) => {
      let got = '';
      let ended = false;
      socket.on('end', () => {
        ended = true;
      });
      socket.on('data', (chunk: Buffer) => {
        got += chunk.toString();
        if (got === 'ping') {
          sawEndBeforeReply = ended;
          socket.end('pong');
        }
      });
    });
    try {
      const client = sockit(['connect', `127.0.0.1:${peer.port}`, '--no-shutdown']);
      client.child.stdin!.end('ping');
      const exit = await client.exited;
      assert.equal(exit.code, 0, client.stderr());
      assert.equal(client.stdout().toString(), 'pong');
      assert.equal(sawEndBeforeReply, false, 'the peer saw our EOF although --no-shutdown was given');
    } finally {
      peer.close();
    }
  });

  it('--recv-only does not read stdin; --send-only prints nothing', async () => {
    const seen: string[] = [];
    const peer = await peerServer((socket) => {
      let got = '';
      socket.on('data', (chunk: Buffer) => {
        got += chunk.toString();
      });
      socket.on('end', () => seen.push(got));
      socket.end('server says hi\n');
    });
    try {
      const recvOnly = sockit(['connect', `127.0.0.1:${peer.port}`, '--recv-only']);
      recvOnly.child.stdin!.write('must not be sent');
      const exit1 = await recvOnly.exited;
      assert.equal(exit1.code, 0, recvOnly.stderr());
      assert.equal(recvOnly.stdout().toString(), 'server says hi\n');

      const sendOnly = sockit(['connect', `127.0.0.1:${peer.port}`, '--send-only']);
      sendOnly.child.stdin!.end('data from send-only');
      const exit2 = await sendOnly.exited;
      assert.equal(exit2.code, 0, sendOnly.stderr());
      assert.equal(sendOnly.stdout().length, 0);
      assert.deepEqual(seen.sort(), ['', 'data from send-only']);
    } finally {
      peer.close();
    }
  });

  it('-i ends a silent session with exit code 4', async () => {
    const peer = await peerServer(() => {}); // accepts and says nothing
    try {
      const client = sockit(['connect', `127.0.0.1:${peer.port}`, '-i', '200ms']);
      const exit = await client.exited;
      assert.equal(exit.code, 4);
      assert.match(client.stderr(), /TIMEOUT: no traffic for 200 ms/);
    } finally {
      peer.close();
    }
  });

  it('a refused connection exits 3 with one line', async () => {
    const port = await closedPort();
    const client = sockit(['connect', `127.0.0.1:${port}`]);
    client.child.stdin!.end();
    const exit = await client.exited;
    assert.equal(exit.code, 3);
    assert.match(client.stderr(), /^sockit: CONNECT_FAILED: .*connection refused/);
    assert.equal(client.stderr().trim().split('\n').length, 1);
  });

  it('--hex dumps both directions and -o logs the session (mode 0600)', async () => {
    const log = join(dir.path, 'session.log');
    const peer = await peerServer((socket) => {
      socket.on('data', () => {});
      socket.on('end', () => socket.end('world'));
    });
    try {
      const client = sockit(['connect', `127.0.0.1:${peer.port}`, '--hex', '-o', log]);
      client.child.stdin!.end('hello');
      const exit = await client.exited;
      assert.equal(exit.code, 0, client.stderr());
      assert.match(client.stderr(), /^> 00000000 {2}68 65 6c 6c 6f .*\|hello\|$/m);
      assert.match(client.stderr(), /^< 00000000 {2}77 6f 72 6c 64 .*\|world\|$/m);
      assert.equal(readFileSync(log, 'utf8'), 'helloworld');
      const { statSync } = await import('node:fs');
      assert.equal(statSync(log).mode & 0o777, 0o600);
    } finally {
      peer.close();
    }
  });

  it('relays over a unix socket and over IPv6', async () => {
    for (const address of [`unix:${join(dir.path, 'raw.sock')}`, '[::1]:0']) {
      const listener = await startListen([address], { stdin: 'ignore' });
      const client = sockit(['connect', listener.address]);
      client.child.stdin!.end(`over ${address}\n`);
      const [clientExit, listenerExit] = await Promise.all([client.exited, listener.exited]);
      assert.equal(clientExit.code, 0, client.stderr());
      assert.equal(listenerExit.code, 0, listener.stderr());
      assert.equal(listener.stdout().toString(), `over ${address}\n`);
    }
  });

  it('relays over TLS with the self-signed certificate pinned on first use', async () => {
    const serverState = join(dir.path, 'server-state');
    const clientState = join(dir.path, 'client-state');
    const listener = await startListen(['tls://127.0.0.1:0', '--state-dir', serverState], {
      stdin: 'ignore',
    });
    const fingerprint = /TLS fingerprint \(SHA-256\): (\S+)/.exec(listener.stderr())?.[1];
    assert.ok(fingerprint, listener.stderr());
    const client = sockit(['connect', listener.address, '--state-dir', clientState]);
    client.child.stdin!.end('secret bytes\n');
    const [clientExit, listenerExit] = await Promise.all([client.exited, listener.exited]);
    assert.equal(clientExit.code, 0, client.stderr());
    assert.equal(listenerExit.code, 0, listener.stderr());
    assert.match(client.stderr(), new RegExp(`pinned new TLS fingerprint ${fingerprint}`));
    assert.equal(listener.stdout().toString(), 'secret bytes\n');
    assert.match(readFileSync(join(clientState, 'known_hosts'), 'utf8'), new RegExp(fingerprint!));

    // A pinned fingerprint that does not match is refused before any byte is sent.
    const again = await startListen(['tls://127.0.0.1:0', '--state-dir', serverState], { stdin: 'ignore' });
    const wrong = sockit(['connect', again.address, '--fingerprint', 'AB'.repeat(32)]);
    wrong.child.stdin!.end('must not arrive');
    const wrongExit = await wrong.exited;
    assert.equal(wrongExit.code, 6);
    assert.match(wrong.stderr(), /TLS_FINGERPRINT_CHANGED/);
    await again.stop();
    assert.equal(again.stdout().length, 0);
  });
});
