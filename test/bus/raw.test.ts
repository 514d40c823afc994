/** `sockit listen --broker/--chat --bus`: the raw broker and line chat shared by two servers over NATS. */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { dial, killAll, type Listening, startListen, waitForText } from '../raw/helpers.js';
import { type Nats, startNats } from './helpers.js';

const HEARTBEAT_MS = 300;

/** Resolves with everything `socket` sent once it contains `text`. */
function readUntil(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      if (!seen.includes(text)) return;
      socket.off('data', onData);
      resolve(seen);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before "${text}" arrived; got: ${seen}`)));
  });
}

describe('raw broker and line chat over NATS', { timeout: 60_000 }, () => {
  let nats: Nats;
  const sockets: net.Socket[] = [];
  const open = async (server: Listening): Promise<net.Socket> => {
    const socket = await dial(server.port);
    sockets.push(socket);
    return socket;
  };
  const listen = (mode: string): Promise<Listening> =>
    startListen(['127.0.0.1:0', mode, '-v', '--bus', nats.url, '--bus-heartbeat', `${HEARTBEAT_MS}ms`]);

  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await killAll();
    await nats?.stop();
  });

  it('the broker relays every client bytes to the clients of both servers, in order', async () => {
    const [one, two] = [await listen('--broker'), await listen('--broker')];
    const sender = await open(one);
    const near = await open(one);
    const far = await open(two);
    const message = Array.from({ length: 200 }, (_, i) => `line ${i}\n`).join('');
    // The broker relays only to members already there: wait until both servers have them.
    await waitForText(one, /\(2 connected\)/);
    await waitForText(two, /\(1 connected\)/);
    const [nearText, farText] = await Promise.all([
      readUntil(near, 'line 199\n'),
      readUntil(far, 'line 199\n'),
      Promise.resolve(sender.write(message)),
    ]);
    assert.equal(nearText, message);
    assert.equal(farText, message);
    await Promise.all([one.stop(), two.stop()]);
  });

  it('line chat: names unique across servers, lines cross, a killed server members are announced gone', async () => {
    const [one, two] = [await listen('--chat'), await listen('--chat')];
    const alice = await open(one);
    assert.match(await readUntil(alice, '\n'), /^\* you are user1;/);
    const bob = await open(two);
    assert.match(await readUntil(bob, '\n'), /^\* you are user2;/, 'user1 is taken on the other server');
    const joined = readUntil(alice, '* user2 joined');
    await joined;
    const heard = readUntil(bob, '<user1> hi from one\n');
    alice.write('hi from one\n');
    await heard;

    const gone = readUntil(bob, '* user1 left (server gone)\n');
    one.child.kill('SIGKILL');
    await gone;
    await two.stop();
  });
});
