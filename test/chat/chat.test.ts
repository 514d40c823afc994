import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type ChatMessage, type ChatPresence, type ChatRoom, type Client, connect } from '../../src/index.js';
import { computeProof } from '../../src/protocol/auth.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrameToBuffer, type Frame } from '../../src/protocol/frame.js';
import { type ChatService, chatService } from '../../src/services/chat.js';
import { echoService } from '../../src/services/echo.js';
import { startServer, TEST_TOKEN, untilChat as until } from '../helpers.js';

type Started = Awaited<ReturnType<typeof startServer>>;

/** A member that authenticates and joins by hand, then stops reading: the slow reader. */
async function stalledMember(port: number, name: string): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const decoder = new FrameDecoder();
  const pending: Frame[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let frame = decoder.next(); frame; frame = decoder.next()) pending.push(frame);
    wake?.();
  });
  const next = async (): Promise<Frame> => {
    while (pending.length === 0) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    return pending.shift()!;
  };
  socket.write(encodeFrameToBuffer({ type: 'hello', version: 1, client: 'stalled-test' }));
  const welcome = await next();
  socket.write(
    encodeFrameToBuffer({ type: 'auth', proof: computeProof(TEST_TOKEN, String(welcome.header.nonce)) }),
  );
  assert.equal((await next()).header.type, 'ready');
  socket.write(encodeFrameToBuffer({ type: 'join', id: 1, room: 'lobby', name }));
  assert.equal((await next()).header.type, 'joined');
  socket.removeAllListeners('data');
  socket.pause(); // from now on nothing is read: the kernel buffers fill, then the server's queue
  return socket;
}

describe('chat service', () => {
  let started: Started;
  let chat: ChatService;
  const clients: Client[] = [];
  const open = async (): Promise<Client> => {
    const client = await connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
    clients.push(client);
    return client;
  };

  before(async () => {
    chat = chatService({ maxQueueBytes: 64 * 1024 });
    started = await startServer({ services: [echoService(), chat] });
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await started.stop();
  });

  it('joins rooms, refuses a taken name with CONFLICT, and announces joins and leaves', async () => {
    const alice = await (await open()).chat({ name: 'alice', room: 'tea' });
    assert.deepEqual([...alice.members], ['alice']);
    const presence: ChatPresence[] = [];
    alice.on('presence', (event: ChatPresence) => presence.push(event));

    const bobClient = await open();
    const bob = await bobClient.chat({ name: 'bob', room: 'tea' });
    assert.deepEqual([...bob.members].sort(), ['alice', 'bob']);
    await assert.rejects((await open()).chat({ name: 'alice', room: 'tea' }), {
      code: 'CONFLICT',
      message: /the name "alice" is taken in room "tea"/,
    });
    await assert.rejects(bobClient.chat({ name: 'bobby', room: 'tea' }), { code: 'CONFLICT' });
    const elsewhere = await (await open()).chat({ name: 'alice', room: 'coffee' });
    assert.equal(elsewhere.room, 'coffee', 'names are unique per room only');

    await until(alice, () => alice.members.has('bob'));
    await bob.leave();
    await until(alice, () => !alice.members.has('bob'));
    const carolClient = await open();
    await carolClient.chat({ name: 'carol', room: 'tea' });
    await until(alice, () => alice.members.has('carol'));
    carolClient.destroy();
    await until(alice, () => !alice.members.has('carol'));
    assert.deepEqual(
      presence.map((event) => `${event.name} ${event.event}`),
      ['bob join', 'bob leave', 'carol join', 'carol leave'],
    );
    assert.deepEqual(chat.members('tea'), ['alice']);
  });

  it('one client in 20 rooms: one listener set, no MaxListeners warning, each message to its room only', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const client = await open();
      const rooms = await Promise.all(
        Array.from({ length: 20 }, (_, index) => client.chat({ name: 'many', room: `room-${index}` })),
      );
      for (const event of ['frame', 'close', 'server-error'])
        assert.equal(client.listenerCount(event), 1, event);
      const received = rooms.map(() => [] as string[]);
      rooms.forEach((room, index) => {
        room.on('message', (message: ChatMessage) => received[index]!.push(message.text));
      });

      const speaker = await open();
      const spoken = await Promise.all(
        rooms.map((_, index) => speaker.chat({ name: 'speaker', room: `room-${index}` })),
      );
      spoken.forEach((room, index) => {
        room.say(`to ${index} a`);
        room.say(`to ${index} b`);
      });
      await Promise.all(rooms.map((room, index) => until(room, () => received[index]!.length === 2)));
      assert.deepEqual(
        received,
        rooms.map((_, index) => [`to ${index} a`, `to ${index} b`]),
      );

      // Leaving keeps the other rooms served; the last one out removes the listeners.
      await rooms[3]!.leave();
      spoken[4]!.say('still here');
      await until(rooms[4]!, () => received[4]!.length === 3);
      assert.deepEqual(received[3], ['to 3 a', 'to 3 b']);
      const closes = rooms.filter((_, index) => index !== 3).map((room) => once(room, 'close'));
      client.destroy();
      await Promise.all(closes);
      for (const event of ['frame', 'close', 'server-error'])
        assert.equal(client.listenerCount(event), 0, event);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a later tick
      assert.deepEqual(
        warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning'),
        [],
      );
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('refuses bad names and rooms with BAD_REQUEST', async () => {
    const client = await open();
    for (const bad of ['', ' padded', 'x'.repeat(65), 'bell\u0007']) {
      await assert.rejects(client.chat({ name: bad, room: 'misc' }), { code: 'BAD_REQUEST' });
    }
  });

  it('fans 40 messages from each of 50 members out to all 50: none lost, in order per sender', async () => {
    const count = 50;
    const perMember = 40;
    const rooms: ChatRoom[] = [];
    for (let i = 0; i < count; i++) rooms.push(await (await open()).chat({ name: `m${i}`, room: 'big' }));
    const received = rooms.map(() => [] as ChatMessage[]);
    for (const [index, room] of rooms.entries()) {
      room.on('message', (message: ChatMessage) => {
        received[index]!.push(message);
      });
    }
    await Promise.all(rooms.map((room) => until(room, () => room.members.size === count)));

    rooms.forEach((room, index) => {
      for (let seq = 0; seq < perMember; seq++) room.say(`${index}:${seq}`);
    });
    await Promise.all(
      rooms.map((room, index) => until(room, () => received[index]!.length === count * perMember)),
    );

    for (const messages of received) {
      const next = new Map<string, number>();
      for (const message of messages) {
        const [sender, seq] = message.text.split(':');
        assert.equal(message.from, `m${sender}`);
        assert.equal(Number(seq), next.get(message.from) ?? 0, `${message.from} out of order`);
        next.set(message.from, Number(seq) + 1);
      }
      assert.equal(next.size, count);
    }
  });

  it('drops a member that stops reading, with a presence reason, and the room goes on', async () => {
    const talker = await (await open()).chat({ name: 'talker', room: 'lobby' });
    const listenerRoom = await (await open()).chat({ name: 'listener', room: 'lobby' });
    const stalled = await stalledMember(portOf(started.address), 'sleepy');
    await until(talker, () => talker.members.has('sleepy'));
    const leaves: ChatPresence[] = [];
    talker.on('presence', (event: ChatPresence) => {
      if (event.event === 'leave') leaves.push(event);
    });

    const body = 'x'.repeat(4096);
    let sent = 0;
    // Write until the server gives up on the sleeper: its kernel buffers fill first, then the 64 KiB queue.
    while (leaves.length === 0 && sent < 20_000) {
      if (!talker.say(body)) await talker.client.drained();
      sent++;
      if (sent % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(talker, () => leaves.length > 0);
    assert.equal(leaves[0]!.name, 'sleepy');
    assert.match(leaves[0]!.reason ?? '', /dropped: too far behind/);
    assert.equal(chat.members('lobby').includes('sleepy'), false);

    // Those who read kept getting everything, and still do.
    let heard = 0;
    listenerRoom.on('message', (message: ChatMessage) => {
      if (message.text === 'still here') heard++;
    });
    talker.say('still here');
    await until(listenerRoom, () => heard === 1);
    stalled.destroy();
  });

  it('closes a connection that says something in a room it did not join', async () => {
    const client = await open();
    const closed = new Promise<Error>((resolve) => client.once('server-error', resolve));
    client.send({ type: 'say', room: 'nowhere', size: 2 }, Buffer.from('hi'));
    assert.match((await closed).message, /without joining it: send "join" first/);
  });
});

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}
