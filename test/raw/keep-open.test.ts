import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import {
  dial,
  killAll,
  readAll,
  readBytes,
  sockit,
  startListen,
  waitForCount,
  waitForText,
} from './helpers.js';

/** Connects from a chosen local address and reports what the listener sent before closing. */
function tryFrom(port: number, host: string, localAddress: string, send: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host, localAddress });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.once('connect', () => socket.end(send));
    socket.once('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

describe('listen --keep-open, --max-conns, --allow/--deny', () => {
  after(killAll);

  it('--keep-open serves 200 concurrent clients; every line reaches stdout intact', async () => {
    const listener = await startListen(['127.0.0.1:0', '-k', '-m', '300'], { stdin: 'ignore' });
    const count = 200;
    const sockets = await Promise.all(Array.from({ length: count }, () => dial(listener.port)));
    // Everyone is connected at once before anyone speaks.
    await Promise.all(
      sockets.map(
        (socket, index) =>
          new Promise<void>((resolve) => {
            socket.on('error', () => {});
            socket.resume();
            socket.once('close', () => resolve());
            socket.end(`client ${index} says hello\n`);
          }),
      ),
    );
    const exit = await listener.stop();
    assert.equal(exit.code, 0, listener.stderr());
    const lines = listener.stdout().toString().trim().split('\n').sort();
    const expected = Array.from({ length: count }, (_, index) => `client ${index} says hello`).sort();
    assert.deepEqual(lines, expected);
  });

  it('--keep-open sends stdin to every connected client', async () => {
    const listener = await startListen(['127.0.0.1:0', '-k', '-v']);
    const sockets = await Promise.all([dial(listener.port), dial(listener.port), dial(listener.port)]);
    await waitForCount(listener, /connection from/, 3);
    const received = sockets.map((socket) => readBytes(socket, 'to everyone\n'.length));
    listener.child.stdin!.write('to everyone\n');
    for (const text of await Promise.all(received)) assert.equal(text.toString(), 'to everyone\n');
    for (const socket of sockets) socket.destroy();
    await listener.stop();
  });

  it('--max-conns refuses the extra client with a clear message, and admits again after one leaves', async () => {
    const listener = await startListen(['127.0.0.1:0', '-k', '--max-conns', '2', '-v'], { stdin: 'ignore' });
    // Half-open: stdin is /dev/null, so the listener ends its side at once; these two must stay
    // connected (holding both places) rather than answer with their own EOF and leave.
    const first = await dial(listener.port, '127.0.0.1', { allowHalfOpen: true });
    const second = await dial(listener.port, '127.0.0.1', { allowHalfOpen: true });
    await waitForCount(listener, /connection from/, 2);
    const third = await dial(listener.port);
    const refusal = (await readAll(third)).toString();
    assert.match(
      refusal,
      /connection refused: this listener takes at most 2 clients at once \(--max-conns\)/,
    );

    first.destroy();
    await waitForText(listener, /disconnected/);
    const fourth = await dial(listener.port, '127.0.0.1', { allowHalfOpen: true });
    fourth.end('admitted again\n');
    await waitForText(listener, /admitted again/, 'stdout');
    second.destroy();
    fourth.destroy();
    await listener.stop();
  });

  it('one-shot listen (no --keep-open) tells a second client it is busy', async () => {
    const listener = await startListen(['127.0.0.1:0', '-v']);
    const first = await dial(listener.port);
    await waitForText(listener, /connection from/);
    const second = await dial(listener.port);
    assert.match((await readAll(second)).toString(), /serves one client and is busy/);
    first.destroy();
    listener.child.stdin!.end(); // both directions done: the session, and the command, end
    const exit = await listener.exited;
    assert.equal(exit.code, 0, listener.stderr());
  });

  it('--allow and --deny match IPv4 CIDR blocks', async () => {
    const listener = await startListen([
      '127.0.0.1:0',
      '--echo',
      '--allow',
      '127.0.0.0/8',
      '--deny',
      '127.0.0.2,127.0.0.3/32',
      '-v',
    ]);
    assert.equal(await tryFrom(listener.port, '127.0.0.1', '127.0.0.1', 'hi'), 'hi');
    assert.equal(await tryFrom(listener.port, '127.0.0.1', '127.0.0.2', 'hi'), '');
    assert.equal(await tryFrom(listener.port, '127.0.0.1', '127.0.0.4', 'hi'), 'hi');
    await waitForText(listener, /refused 127\.0\.0\.2:\d+: not allowed/);
    await listener.stop();
  });

  it('--allow and --deny match IPv6 and IPv4 clients of a dual-stack socket', async () => {
    const v6only = await startListen(['[::]:0', '--echo', '--allow', '::1/128']);
    assert.equal(await tryFrom(v6only.port, '::1', '::1', 'six'), 'six');
    assert.equal(await tryFrom(v6only.port, '127.0.0.1', '127.0.0.1', 'four'), '', 'an IPv4 peer is not ::1');
    await v6only.stop();

    const noV4 = await startListen(['[::]:0', '--echo', '--deny', '127.0.0.0/8']);
    assert.equal(
      await tryFrom(noV4.port, '127.0.0.1', '127.0.0.1', 'four'),
      '',
      '::ffff:127.0.0.1 matches 127/8',
    );
    assert.equal(await tryFrom(noV4.port, '::1', '::1', 'six'), 'six');
    await noV4.stop();
  });

  it('--allow with a host name or bad prefix is a usage error', async () => {
    for (const bad of ['localhost', '10.0.0.0/33', '::1/129', '', ' ', ',']) {
      const run = sockit(['listen', '127.0.0.1:0', '--allow', bad], { stdin: 'ignore' });
      const exit = await run.exited;
      assert.equal(exit.code, 2, run.stderr());
      assert.match(run.stderr(), /^sockit: USAGE: --allow: /);
    }
    // An empty --deny is as much a mistake as an empty --allow.
    const run = sockit(['listen', '127.0.0.1:0', '--deny', ' , '], { stdin: 'ignore' });
    assert.equal((await run.exited).code, 2, run.stderr());
    assert.match(run.stderr(), /^sockit: USAGE: --deny: " , " lists no address/);
  });
});
