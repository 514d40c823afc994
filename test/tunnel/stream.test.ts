import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { SockitError } from '../../src/errors.js';
import { TUNNEL_FRAMES } from '../../src/protocol/tunnel.js';
import { TunnelAllowList } from '../../src/services/tunnel/index.js';
import {
  roundQuantum,
  TUNNEL_CONNECTION_BACKLOG,
  TUNNEL_ROUND_QUANTUM,
  type TunnelSendAccount,
  TunnelSendGate,
} from '../../src/transport/tunnel-gate.js';
import { TunnelStream } from '../../src/transport/tunnel-stream.js';

/** One turn of the event loop (its I/O included): what the stream tests count instead of a clock. */
const loopTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function loopTurns(count: number): Promise<void> {
  for (let turn = 0; turn < count; turn++) await loopTurn();
}

/** A connected pair of loopback sockets. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  server.close();
  return [client, accepted];
}

test(
  'a stream never sends more than its credit, and sends more only after a window update',
  { timeout: 10_000 },
  async () => {
    const [outside, inside] = await socketPair();
    let sent = 0;
    let grew: (() => void) | undefined;
    const stream = new TunnelStream(inside, {
      send: (header, body) => {
        if (header.type === TUNNEL_FRAMES.data) {
          sent += body!.length;
          if (sent >= 100_000) grew?.();
        }
      },
      gate: new TunnelSendGate({ writableLength: 0, drained: () => Promise.resolve() }),
      credit: 50_000,
      window: 1024 * 1024,
      onDone: () => {},
    });
    stream.start();
    outside.write(Buffer.alloc(500_000, 1));
    // Wait until the socket has given everything it can: the stream must stop at its credit.
    while (sent < 50_000) await loopTurn();
    // Let every read the socket still has run (loop turns, not a clock): none may pass the credit.
    await loopTurns(20);
    assert.equal(sent, 50_000, 'stops at exactly the credit');
    const more = new Promise<void>((resolve) => {
      grew = resolve;
    });
    stream.onFrame({ header: { type: TUNNEL_FRAMES.window, bytes: 50_000 }, body: Buffer.alloc(0) });
    await more;
    assert.equal(sent, 100_000, 'the window update lets exactly that much more through');
    stream.onFrame({ header: { type: TUNNEL_FRAMES.data }, body: Buffer.alloc(2 * 1024 * 1024) });
    assert.equal(stream.done, true, 'data over our window ends the stream');
    outside.destroy();
  },
);

/** A connection as a gate sees it: bytes queued, and a drain the test performs. */
interface ModelConnection {
  gate: TunnelSendGate;
  queued: number;
  /** Drains on its own a loop turn after a wait begins, as a socket whose peer reads does. */
  autoDrain: boolean;
  drain(): void;
}

function modelConnection(): ModelConnection {
  let drained: (() => void) | undefined;
  const connection: ModelConnection = {
    queued: 0,
    autoDrain: false,
    gate: new TunnelSendGate({
      get writableLength() {
        return connection.queued;
      },
      drained: () =>
        new Promise<void>((resolve) => {
          drained = resolve;
          if (connection.autoDrain) setImmediate(() => connection.drain());
        }),
    }),
    drain() {
      connection.queued = 0;
      const resolve = drained;
      drained = undefined;
      resolve?.();
    },
  };
  return connection;
}

test('the gate: in line in order, a quantum per stream per round, up to the mark', async () => {
  const connection = modelConnection();
  const { gate } = connection;
  const account = (): TunnelSendAccount => ({ round: -1, bytes: 0 });
  const [accountA, accountB, accountC, newcomer] = [account(), account(), account(), account()];
  assert.equal(gate.allowance(accountA), Number.POSITIVE_INFINITY, 'not congested: no limit');
  connection.queued = TUNNEL_CONNECTION_BACKLOG;
  assert.equal(gate.allowance(accountA), 0, 'over the mark');
  const served: string[] = [];
  const turn = (name: string, held: TunnelSendAccount) => (): void => {
    served.push(name);
    gate.charge(held, gate.quantum);
    connection.queued += TUNNEL_CONNECTION_BACKLOG / 2;
  };
  const [a, b, c] = [turn('a', accountA), turn('b', accountB), turn('c', accountC)];
  gate.wait(a);
  gate.wait(b);
  gate.wait(c);
  connection.queued = 0;
  assert.equal(
    gate.allowance(newcomer),
    roundQuantum(1),
    'congested: a quantum per round, for a alone at first',
  );
  connection.drain();
  await loopTurn();
  assert.equal(gate.quantum, roundQuantum(3), 'the next round shares the mark among the three in line');
  assert.deepEqual(served, ['a', 'b'], 'two halves reach the mark: c waits for the next round');
  connection.queued = 0;
  assert.equal(gate.allowance(accountA), 0, "a has used this round's quantum");
  connection.queued = TUNNEL_CONNECTION_BACKLOG;
  connection.drain();
  await loopTurn();
  assert.deepEqual(served, ['a', 'b', 'c'], 'the next round serves c first');
  assert.equal(
    gate.quantum,
    roundQuantum(2),
    'shared by a and b, who sent in the round before, and c in line',
  );
  assert.equal(gate.allowance(accountA), gate.quantum, 'and gives a a new quantum');
  gate.wait(b);
  gate.wait(c);
  gate.leave(c, accountC); // c's stream ended while it waited
  let again = 0;
  const greedy = (): void => {
    served.push('greedy');
    if (again++ === 0) gate.wait(greedy); // a read larger than its quantum: the rest waits
  };
  gate.wait(greedy);
  connection.queued = TUNNEL_CONNECTION_BACKLOG;
  connection.drain();
  await loopTurn();
  assert.deepEqual(
    served,
    ['a', 'b', 'c', 'b', 'greedy'],
    'one turn per round, also for a stream back in line',
  );
  connection.drain();
  await loopTurn();
  assert.deepEqual(served, ['a', 'b', 'c', 'b', 'greedy', 'greedy']);
  connection.drain(); // a drain with nobody waiting, and nobody a loop turn later: the congestion ends
  await loopTurns(3);
  assert.equal(gate.allowance(accountA), Number.POSITIVE_INFINITY, 'no longer congested');
});

test('the quantum: the mark shared among the streams, at least one full read', () => {
  assert.equal(
    roundQuantum(1),
    TUNNEL_CONNECTION_BACKLOG,
    'a stream alone sends up to the mark between drains',
  );
  assert.equal(roundQuantum(0), TUNNEL_CONNECTION_BACKLOG);
  assert.equal(roundQuantum(4), TUNNEL_CONNECTION_BACKLOG / 4);
  assert.equal(roundQuantum(20), TUNNEL_ROUND_QUANTUM, 'never less than one read');
});

test('streams that began together share the first congested round, and leave the share when they end', () => {
  const connection = modelConnection();
  const { gate } = connection;
  const accounts = Array.from({ length: 4 }, (): TunnelSendAccount => ({ round: -1, bytes: 0 }));
  for (const account of accounts) gate.join(account);
  connection.queued = TUNNEL_CONNECTION_BACKLOG;
  const turn = (): void => {};
  gate.wait(turn); // the first of them to read finds the connection over its mark
  assert.equal(gate.quantum, roundQuantum(4), 'a quarter each, not the whole mark for the first');
  for (const account of accounts.slice(1)) gate.leave(() => {}, account);
  gate.leave(turn, accounts[0]!);
  gate.wait(turn);
  connection.drain();
});

test('a stream alone on a congested connection is held once per drain, not once per read', async () => {
  const connection = modelConnection();
  const { gate } = connection;
  const account: TunnelSendAccount = { round: -1, bytes: 0 };
  const read = 64 * 1024;
  let holds = 0;
  let sent = 0;
  // The stream's reads: each goes out while the gate allows it, else waits for its turn.
  const readOnce = (): boolean => {
    if (gate.allowance(account) < read) return false;
    gate.charge(account, read);
    connection.queued += read;
    sent += read;
    return true;
  };
  for (let drains = 0; drains < 4; drains++) {
    while (readOnce());
    holds++;
    const turn = new Promise<void>((resolve) => gate.wait(resolve));
    connection.drain();
    await turn;
  }
  assert.ok(sent >= 3 * TUNNEL_CONNECTION_BACKLOG, `${sent} bytes in ${holds} holds`);
});

test(
  'a stream that finds the connection over its mark keeps its read, stops reading, and sends it in its turn',
  { timeout: 10_000 },
  async () => {
    const [outside, inside] = await socketPair();
    const connection = modelConnection();
    let sent = 0;
    let progressed: (() => void) | undefined;
    const stream = new TunnelStream(inside, {
      send: (header, body) => {
        if (header.type !== TUNNEL_FRAMES.data) return;
        sent += body!.length;
        connection.queued += body!.length;
        progressed?.();
      },
      gate: connection.gate,
      credit: 8 * 1024 * 1024,
      window: 1024 * 1024,
      onDone: () => {},
    });
    stream.start();
    const total = 4 * TUNNEL_CONNECTION_BACKLOG;
    const firstMark = new Promise<void>((resolve) => {
      progressed = () => {
        if (connection.queued >= TUNNEL_CONNECTION_BACKLOG) resolve();
      };
    });
    outside.write(Buffer.alloc(total, 1));
    await firstMark;
    // Let every read the socket still has run (loop turns, not a clock): none may be sent.
    const before = sent;
    await loopTurns(20);
    assert.equal(sent, before, 'nothing more is sent while the connection is over its mark');
    assert.ok(before < TUNNEL_CONNECTION_BACKLOG + 64 * 1024, `at most one read past the mark (${before} B)`);
    const all = new Promise<void>((resolve) => {
      progressed = () => {
        if (sent === total) resolve();
      };
    });
    connection.autoDrain = true;
    connection.drain();
    await all;
    assert.equal(sent, total, 'the held read and the rest follow, drain by drain');
    outside.destroy();
    stream.abort(new SockitError('CLOSED', 'test over'));
  },
);

test('a gate whose drain wait returns at once while over its mark lets the loop turn', async () => {
  // As with a socket whose own mark is above the gate's: drained() resolves, the queue stays full.
  let queued = TUNNEL_CONNECTION_BACKLOG;
  const gate = new TunnelSendGate({
    get writableLength() {
      return queued;
    },
    drained: () => Promise.resolve(),
  });
  let served = false;
  gate.wait(() => {
    served = true;
  });
  await loopTurns(5);
  assert.equal(served, false, 'still over the mark: nobody is served, and timers and I/O ran meanwhile');
  queued = 0;
  while (!served) await loopTurn();
});

test('early bytes that must wait in line stop the socket from being read', { timeout: 10_000 }, async () => {
  const [outside, inside] = await socketPair();
  const connection = modelConnection();
  connection.queued = TUNNEL_CONNECTION_BACKLOG; // the connection is over its mark already
  const stream = new TunnelStream(inside, {
    send: () => {},
    gate: connection.gate,
    credit: 8 * 1024 * 1024,
    window: 1024 * 1024,
    onDone: () => {},
  });
  stream.start(Buffer.alloc(1000, 1)); // what a SOCKS client sent after its request
  outside.write(Buffer.alloc(4 * 1024 * 1024, 2));
  await loopTurns(20);
  assert.equal(inside.bytesRead, 0, 'nothing is read behind the held early bytes');
  outside.destroy();
  stream.abort(new SockitError('CLOSED', 'test over'));
});

test('the allow-list: host names, CIDR port ranges, IPv6, unix paths; nothing else', () => {
  const allow = new TunnelAllowList([
    'db.internal:5432',
    '10.0.0.0/8:1000-2000',
    '[::1]:*',
    'unix:/run/app.sock',
  ]);
  assert.equal(allow.admits('db.internal', '192.0.2.1', 5432), true);
  assert.equal(allow.admits('DB.internal', '192.0.2.1', 5433), false);
  assert.equal(allow.admits('10.2.3.4', '10.2.3.4', 1500), true);
  assert.equal(allow.admits('10.2.3.4', '10.2.3.4', 2001), false);
  assert.equal(allow.admits('other', '10.9.9.9', 1000), true, 'a name that resolves into a listed block');
  assert.equal(allow.admits('::1', '::1', 22), true);
  assert.equal(allow.admits('127.0.0.1', '127.0.0.1', 22), false);
  assert.equal(allow.admitsPath('/run/app.sock'), true);
  assert.equal(allow.admitsPath('/run/other.sock'), false);
  for (const bad of ['nohost', '::1:80', '10.0.0.0/33:80', 'host:0', 'host:5-2', 'unix:relative'])
    assert.throws(() => new TunnelAllowList([bad]), { code: 'USAGE' }, bad);
});

test(
  'a body that arrived in pieces reaches the socket byte-exact, and credit returns in quarter-window batches',
  { timeout: 10_000 },
  async () => {
    const [outside, inside] = await socketPair();
    const window = 512 * 1024;
    const grants: number[] = [];
    let granted = 0;
    let allGranted: (() => void) | undefined;
    const stream = new TunnelStream(inside, {
      send: (header) => {
        if (header.type !== TUNNEL_FRAMES.window) return;
        grants.push(header.bytes as number);
        granted += header.bytes as number;
        if (granted === window) allGranted?.();
      },
      gate: new TunnelSendGate({ writableLength: 0, drained: () => Promise.resolve() }),
      credit: 0,
      window,
      onDone: () => {},
    });
    stream.start();
    const sent = Buffer.alloc(window);
    for (let at = 0; at < window; at++) sent[at] = (at * 7 + (at >> 9)) & 0xff;
    const received: Buffer[] = [];
    let receivedBytes = 0;
    const all = new Promise<void>((resolve) => {
      outside.on('data', (chunk: Buffer) => {
        received.push(chunk);
        receivedBytes += chunk.length;
        if (receivedBytes === window) resolve();
      });
    });
    const grantedAll = new Promise<void>((resolve) => {
      allGranted = resolve;
    });
    // 64 KiB bodies in 16 KiB-ish pieces, the way TLS records split them.
    for (let at = 0; at < window; at += 64 * 1024) {
      const body = sent.subarray(at, at + 64 * 1024);
      const parts = [body.subarray(0, 10_000), body.subarray(10_000, 40_000), body.subarray(40_000)];
      stream.onFrame({
        header: { type: TUNNEL_FRAMES.data },
        parts,
        get body(): Buffer {
          throw new Error('the pieces were joined');
        },
      });
    }
    assert.equal(stream.done, false, 'exactly the window is allowed');
    await Promise.all([all, grantedAll]);
    assert.deepEqual(Buffer.concat(received), sent, 'the pieces arrive in order, byte-exact');
    assert.deepEqual(
      grants,
      [window / 4, window / 4, window / 4, window / 4],
      'one grant per quarter window',
    );
    stream.onFrame({ header: { type: TUNNEL_FRAMES.data }, body: Buffer.alloc(window + 1) });
    assert.equal(stream.done, true, 'more than the renewed window ends the stream');
    outside.destroy();
  },
);
