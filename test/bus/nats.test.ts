/**
 * Chat over a real nats-server (started here on a port it picks): three `sockit serve --chat
 * --bus` processes share rooms; names are unique across them; a kill -9ed server's members leave
 * within the documented bound; a NATS outage keeps local talk going and heals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  type ChatMessage,
  type ChatNotice,
  type ChatPresence,
  type ChatRoom,
  type Client,
  connect,
} from '../../src/index.js';
import { TEST_TOKEN, untilChat as until } from '../helpers.js';
import { killAll } from '../raw/helpers.js';
import { type BusServer, type Nats, sharedState, startBusServer, startNats } from './helpers.js';

/** Short heartbeat so the bounds are quick to test: a dead server is gone in 3 beats + 1. */
const HEARTBEAT_MS = 300;
const GONE_BOUND_MS = 4 * HEARTBEAT_MS;
/** Slack for a machine shared by many test runs. */
const SLACK_MS = 2000;

describe('chat over NATS: three servers', { timeout: 180_000 }, () => {
  let nats: Nats;
  let state: Awaited<ReturnType<typeof sharedState>>;
  const servers: BusServer[] = [];
  const clients: Client[] = [];

  const join = async (server: BusServer, name: string, room: string): Promise<ChatRoom> => {
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    clients.push(client);
    return client.chat({ name, room });
  };

  before(async () => {
    nats = await startNats();
    state = await sharedState();
    for (let i = 0; i < 3; i++) {
      servers.push(await startBusServer(nats.url, state.path, ['--bus-heartbeat', `${HEARTBEAT_MS}ms`]));
    }
  });
  after(async () => {
    for (const client of clients) client.destroy();
    for (const server of servers) await server.stop();
    await killAll();
    await nats?.stop();
    await state?.cleanup();
  });

  it('50 members on 3 servers get all 10,000 messages of 10 senders, in each sender order', async () => {
    const count = 50;
    const senders = 10;
    const perSender = 1000;
    const rooms: ChatRoom[] = [];
    for (let i = 0; i < count; i++) rooms.push(await join(servers[i % 3]!, `m${i}`, 'big'));
    await Promise.all(rooms.map((room) => until(room, () => room.members.size === count)));

    const received = rooms.map(() => 0);
    const disorder: string[] = [];
    for (const [index, room] of rooms.entries()) {
      const next = new Map<string, number>();
      room.on('message', (message: ChatMessage) => {
        const seq = Number(message.text.slice(message.text.indexOf(':') + 1));
        if (seq !== (next.get(message.from) ?? 0)) disorder.push(`m${index} got ${message.from}:${seq}`);
        next.set(message.from, seq + 1);
        received[index]!++;
      });
    }
    await Promise.all(
      rooms.slice(0, senders).map(async (room, sender) => {
        for (let seq = 0; seq < perSender; seq++) {
          if (!room.say(`${sender}:${seq}`)) await room.client.drained();
        }
      }),
    );
    await Promise.all(
      rooms.map((room, index) => until(room, () => received[index]! === senders * perSender)),
    );
    assert.deepEqual(disorder, []);
  });

  it('a name is unique across servers: CONFLICT on the second, one winner of a race', async () => {
    await join(servers[0]!, 'unique', 'names');
    await assert.rejects(join(servers[1]!, 'unique', 'names'), {
      code: 'CONFLICT',
      message: /the name "unique" is taken in room "names"/,
    });
    const race = await Promise.allSettled(servers.map((server) => join(server, 'racer', 'names')));
    assert.equal(race.filter((result) => result.status === 'fulfilled').length, 1);
    for (const result of race) {
      if (result.status === 'rejected') assert.equal((result.reason as { code: string }).code, 'CONFLICT');
    }
  });

  it(`kill -9 of a server: its members leave every room within ${GONE_BOUND_MS} ms, and their names free up`, async () => {
    const doomed = await startBusServer(nats.url, state.path, ['--bus-heartbeat', `${HEARTBEAT_MS}ms`]);
    const watchers = [await join(servers[0]!, 'w0', 'k1'), await join(servers[1]!, 'w1', 'k2')];
    await join(doomed, 'ghost', 'k1');
    await join(doomed, 'ghost', 'k2');
    await Promise.all(watchers.map((room) => until(room, () => room.members.has('ghost'))));

    const leaves: ChatPresence[] = [];
    for (const room of watchers) room.on('presence', (event: ChatPresence) => leaves.push(event));
    const killedAt = Date.now();
    doomed.child.kill('SIGKILL');
    await Promise.all(watchers.map((room) => until(room, () => !room.members.has('ghost'))));
    const took = Date.now() - killedAt;
    assert.ok(took <= GONE_BOUND_MS + SLACK_MS, `members left after ${took} ms`);
    assert.deepEqual(
      leaves.map((event) => `${event.room} ${event.name} ${event.event} ${event.reason}`).sort(),
      ['k1 ghost leave server gone', 'k2 ghost leave server gone'],
    );
    // The name registry lets go within the same bound (its entries live 3 heartbeats).
    const deadline = killedAt + GONE_BOUND_MS + SLACK_MS;
    for (;;) {
      try {
        await join(servers[2]!, 'ghost', 'k1');
        break;
      } catch (error) {
        assert.equal((error as { code: string }).code, 'CONFLICT');
        assert.ok(Date.now() < deadline, 'the name of a killed server was not freed in time');
        // Retry once per heartbeat: that is when the registry's entries can expire.
        await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_MS));
      }
    }
  });

  it('nats-server restarted mid-run: local members keep talking, remote messages of the outage are lost, the bus heals', async () => {
    const a1 = await join(servers[0]!, 'a1', 'storm');
    const a2 = await join(servers[0]!, 'a2', 'storm');
    const b1 = await join(servers[1]!, 'b1', 'storm');
    const b2 = await join(servers[1]!, 'b2', 'storm');
    const all = [a1, a2, b1, b2];
    await Promise.all(all.map((room) => until(room, () => room.members.size === 4)));
    const heard = new Map<ChatRoom, string[]>(all.map((room) => [room, []]));
    const notices = new Map<ChatRoom, string[]>(all.map((room) => [room, []]));
    for (const room of all) {
      room.on('message', (message: ChatMessage) => heard.get(room)!.push(`${message.from}:${message.text}`));
      room.on('notice', (notice: ChatNotice) => notices.get(room)!.push(notice.event));
    }
    b1.say('before');
    await until(a1, () => heard.get(a1)!.includes('b1:before'));

    await nats.kill();
    await Promise.all(all.map((room) => until(room, () => notices.get(room)!.includes('bus-down'))));
    a1.say('local only');
    b1.say('during');
    await until(a2, () => heard.get(a2)!.includes('a1:local only'));
    await until(b2, () => heard.get(b2)!.includes('b1:during'));
    await assert.rejects(join(servers[0]!, 'newcomer', 'storm'), { code: 'UNAVAILABLE' });
    b2.client.destroy(); // leaves while the bus is down: the others learn it on resync

    await nats.restart();
    await Promise.all([a1, a2, b1].map((room) => until(room, () => notices.get(room)!.includes('bus-up'))));
    await until(a1, () => !a1.members.has('b2'));
    for (let i = 0; i < 20; i++) b1.say(`after ${i}`);
    await until(a1, () => heard.get(a1)!.includes('b1:after 19'));
    assert.deepEqual(heard.get(a1), [
      'b1:before',
      'a1:local only',
      ...Array.from({ length: 20 }, (_, i) => `b1:after ${i}`),
    ]);
    assert.ok(!heard.get(b1)!.includes('a1:local only'), 'a message of the outage crossed the bus late');
    assert.equal((await join(servers[0]!, 'newcomer', 'storm')).name, 'newcomer');
  });
});
