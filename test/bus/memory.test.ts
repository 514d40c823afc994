/** Chat rooms shared by two servers in one process over the in-process bus (a shared MemoryHub). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryHub, memoryBus } from '../../src/bus/memory.js';
import { type ChatMessage, type ChatRoom, type Client, connect } from '../../src/index.js';
import { type ChatService, chatService } from '../../src/services/chat.js';
import { startServer, TEST_TOKEN, untilChat as until } from '../helpers.js';

type Started = Awaited<ReturnType<typeof startServer>>;

describe('chat over the in-process bus', { timeout: 30_000 }, () => {
  const hub = new MemoryHub();
  const servers: Started[] = [];
  const chats: ChatService[] = [];
  const clients: Client[] = [];
  const join = async (server: number, name: string, room = 'lobby'): Promise<ChatRoom> => {
    const started = servers[server]!;
    const client = await connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
    clients.push(client);
    return client.chat({ name, room });
  };

  before(async () => {
    for (let i = 0; i < 2; i++) {
      const chat = chatService({ bus: memoryBus({ hub, heartbeatMs: 200 }) });
      chats.push(chat);
      servers.push(await startServer({ services: [chat] }));
    }
  });
  after(async () => {
    for (const client of clients) client.destroy();
    for (const server of servers) await server.stop();
  });

  it('shares members, presence and messages, and refuses a name taken on the other server', async () => {
    const alice = await join(0, 'alice');
    const bob = await join(1, 'bob');
    await until(alice, () => alice.members.has('bob'));
    assert.deepEqual([...bob.members].sort(), ['alice', 'bob']);
    await assert.rejects(join(1, 'alice'), { code: 'CONFLICT', message: /the name "alice" is taken/ });
    assert.equal((await join(1, 'alice', 'elsewhere')).room, 'elsewhere', 'names are unique per room');

    const heard: ChatMessage[] = [];
    alice.on('message', (message: ChatMessage) => heard.push(message));
    for (let i = 0; i < 100; i++) bob.say(`b${i}`);
    await until(alice, () => heard.length === 100);
    assert.deepEqual(
      heard.map((message) => `${message.from}:${message.text}`),
      Array.from({ length: 100 }, (_, i) => `bob:b${i}`),
    );

    bob.client.destroy();
    await until(alice, () => !alice.members.has('bob'));
    assert.deepEqual(chats[0]!.members('lobby'), ['alice']);
    // The name is free again on either server.
    const again = await join(0, 'bob');
    assert.equal(again.name, 'bob');
  });
});
