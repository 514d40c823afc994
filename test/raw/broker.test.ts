import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, describe, it } from 'node:test';
import { sanitizeLine } from '../../src/raw/line-chat.js';
import { dial, killAll, startListen, waitForCount, waitForText } from './helpers.js';

const CLIENTS = 50;
const RECORD = 64;

/** A fixed-size record `c<client>:<seq>` padded with dots, so a receiver can parse the byte stream. */
function record(client: number, seq: number): Buffer {
  const text = `c${client}:${seq}:`;
  return Buffer.from(text.padEnd(RECORD - 1, '.') + '\n');
}

/** Resolves with everything a socket received once `bytes` have arrived. */
function collect(socket: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      if (total === bytes) resolve(Buffer.concat(chunks));
      if (total > bytes) reject(new Error(`received ${total} bytes, expected ${bytes}`));
    });
    socket.once('close', () => {
      if (total < bytes) reject(new Error(`closed after ${total} of ${bytes} bytes`));
    });
  });
}

describe('listen --broker and --chat with 50 clients', () => {
  after(killAll);

  it('--broker delivers every record of every other client, none lost, in order per sender', async () => {
    const perClient = 100;
    const broker = await startListen(['127.0.0.1:0', '--broker', '-v'], { stdin: 'ignore' });
    const sockets: net.Socket[] = [];
    for (let i = 0; i < CLIENTS; i++) sockets.push(await dial(broker.port));
    await waitForText(broker, new RegExp(`\\(${CLIENTS} connected\\)`));

    const expected = (CLIENTS - 1) * perClient * RECORD;
    const received = sockets.map((socket) => collect(socket, expected));
    sockets.forEach((socket, client) => {
      for (let seq = 0; seq < perClient; seq++) socket.write(record(client, seq));
    });
    const streams = await Promise.all(received);

    streams.forEach((stream, receiver) => {
      const next = new Map<number, number>();
      for (let offset = 0; offset < stream.length; offset += RECORD) {
        const match = /^c(\d+):(\d+):/.exec(stream.subarray(offset, offset + RECORD).toString());
        assert.ok(match, `receiver ${receiver}: unparsable record at ${offset}`);
        const sender = Number(match[1]);
        const seq = Number(match[2]);
        assert.notEqual(sender, receiver, 'a client never gets its own bytes back');
        assert.equal(seq, next.get(sender) ?? 0, `receiver ${receiver}: sender ${sender} out of order`);
        next.set(sender, seq + 1);
      }
      assert.equal(next.size, CLIENTS - 1);
      for (const count of next.values()) assert.equal(count, perClient);
    });
    for (const socket of sockets) socket.destroy();
    assert.equal((await broker.stop()).code, 0);
  });

  it('--chat names members, announces joins and leaves, and keeps every line in order per sender', async () => {
    const perClient = 40;
    const chat = await startListen(['127.0.0.1:0', '--chat', '-v'], { stdin: 'ignore' });
    const members: { socket: net.Socket; name: string; lines: string[]; buffered: string }[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const socket = await dial(chat.port);
      const member = { socket, name: '', lines: [] as string[], buffered: '' };
      socket.setEncoding('utf8');
      socket.on('data', (text: string) => {
        member.buffered += text;
        const parts = member.buffered.split('\n');
        member.buffered = parts.pop()!;
        member.lines.push(...parts);
      });
      members.push(member);
    }
    await waitForCount(chat, /joined the chat as/, CLIENTS);
    // Every member has its welcome and the join notices of all who came after it.
    await Promise.all(
      members.map(
        (member, index) =>
          new Promise<void>((resolve) => {
            const check = (): void => {
              if (member.lines.length >= CLIENTS - index) resolve();
            };
            member.socket.on('data', check);
            check();
          }),
      ),
    );
    for (const member of members) {
      const welcome = member.lines[0] ?? '';
      const name = /^\* you are (user\d+);/.exec(welcome)?.[1];
      assert.ok(name, `welcome line: ${welcome}`);
      member.name = name;
    }
    assert.match(
      members[0]!.lines.join('\n'),
      new RegExp(`\\* ${members[1]!.name} joined \\(127\\.0\\.0\\.1:\\d+\\)`),
    );

    const expectedMessages = (CLIENTS - 1) * perClient;
    const done = members.map(
      (member) =>
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (member.lines.filter((line) => line.startsWith('<')).length >= expectedMessages) resolve();
          };
          member.socket.on('data', check);
          check();
        }),
    );
    members.forEach((member, index) => {
      for (let seq = 0; seq < perClient; seq++) member.socket.write(`line ${seq} from client ${index}\n`);
    });
    await Promise.all(done);

    const byName = new Map(members.map((member, index) => [member.name, index]));
    for (const member of members) {
      const next = new Map<string, number>();
      for (const line of member.lines.filter((text) => text.startsWith('<'))) {
        const match = /^<(user\d+)> line (\d+) from client (\d+)$/.exec(line);
        assert.ok(match, `unexpected line: ${line}`);
        const [, from, seq, client] = match;
        assert.notEqual(from, member.name);
        assert.equal(byName.get(from!), Number(client), 'the prefix names the real sender');
        assert.equal(Number(seq), next.get(from!) ?? 0, `${member.name}: ${from} out of order`);
        next.set(from!, Number(seq) + 1);
      }
      assert.equal(next.size, CLIENTS - 1);
    }

    // A leave is announced to the others.
    const leaving = members.pop()!;
    leaving.socket.end();
    await new Promise<void>((resolve) => {
      const watcher = members[0]!;
      const check = (): void => {
        if (watcher.lines.includes(`* ${leaving.name} left`)) resolve();
      };
      watcher.socket.on('data', check);
      check();
    });
    for (const member of members) member.socket.destroy();
    assert.equal((await chat.stop()).code, 0);
  });

  it('sanitizeLine keeps UTF-8 and tabs, and defuses control characters', () => {
    assert.equal(sanitizeLine(Buffer.from('héllo\tworld\r')).toString(), 'héllo\tworld');
    assert.equal(sanitizeLine(Buffer.from('\u001b[2Jgone\u0007')).toString(), '?[2Jgone?');
  });
});
