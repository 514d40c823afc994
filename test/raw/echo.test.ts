import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { QuitDetector } from '../../src/raw/echo.js';
import { requireTool } from '../tools.js';
import { dial, killAll, type Listening, launch, readAll, readBytes, startListen } from './helpers.js';

const PYTHON_CLIENT = fileURLToPath(new URL('../../../bench/peers/echo_client.py', import.meta.url));

describe('QuitDetector', () => {
  const scanAll = (...chunks: string[]): number[] => {
    const detector = new QuitDetector();
    return chunks.map((chunk) => detector.scan(Buffer.from(chunk)));
  };

  it('finds exit/quit on a line of its own or sent bare, as the seeds do', () => {
    assert.deepEqual(scanAll('exit'), [0]);
    assert.deepEqual(scanAll('quit\n'), [0]);
    assert.deepEqual(scanAll('quit\r\n'), [0]);
    assert.deepEqual(scanAll('hello\nexit\n'), [6]);
    assert.deepEqual(scanAll('hello\n', 'ex', 'it'), [-1, -1, 0]);
    assert.deepEqual(scanAll('exits\n', 'say exit\n', 'exitquit'), [-1, -1, -1]);
    assert.deepEqual(scanAll('x'.repeat(100), 'exit\n'), [-1, -1], 'part of a long line is not a quit word');
    assert.deepEqual(
      scanAll('hello', 'world', 'exit'),
      [-1, -1, 0],
      'the tutorial client: messages without a newline, then a bare exit',
    );
    assert.deepEqual(scanAll('hello', 'exit\n'), [-1, -1], 'a line that only ends in exit is not one');
  });
});

describe('listen --echo upper --greeting', () => {
  let server: Listening;
  before(async () => {
    server = await startListen(['127.0.0.1:0', '--echo', 'upper', '--greeting', 'Hello World!'], {
      stdin: 'ignore',
    });
  });
  after(async () => {
    await killAll();
  });

  it("serves the seeds' unmodified Python echo client", async (t) => {
    const python3 = requireTool(t, 'python3');
    if (!python3) return;
    const python = launch(python3, [PYTHON_CLIENT, '127.0.0.1', String(server.port), '--expect-greeting']);
    python.child.stdin!.end('hello\nwhat a day\nexit\n');
    const exit = await python.exited;
    assert.equal(exit.code, 0, python.stderr());
    const out = python.stdout().toString('utf8');
    assert.match(out, /^Hello World!/);
    assert.match(out, /收到服务端发来的消息 HELLO/);
    assert.match(out, /收到服务端发来的消息 WHAT A DAY/);
  });

  it('serves 20 Python clients at once', async (t) => {
    const python3 = requireTool(t, 'python3');
    if (!python3) return;
    const clients = Array.from({ length: 20 }, (_, index) => {
      const python = launch(python3, [PYTHON_CLIENT, '127.0.0.1', String(server.port), '--expect-greeting']);
      python.child.stdin!.end(`client ${index}\nquit\n`);
      return { index, python };
    });
    for (const { index, python } of clients) {
      const exit = await python.exited;
      assert.equal(exit.code, 0, python.stderr());
      assert.match(python.stdout().toString('utf8'), new RegExp(`CLIENT ${index}`));
    }
    assert.equal(server.child.exitCode, null, 'the echo server keeps running');
  });

  it('ends the session on a bare "exit" and after the lines before "quit"', async () => {
    const bare = await dial(server.port);
    const bareText = readAll(bare);
    bare.write('exit');
    assert.equal((await bareText).toString(), 'Hello World!\n');

    const lines = await dial(server.port);
    const linesText = readAll(lines);
    lines.write('one\ntwo\nquit\nnever echoed\n');
    assert.equal((await linesText).toString(), 'Hello World!\nONE\nTWO\n');
  });

  it(
    'ends the session on a bare "exit" after messages without a newline (the tutorial client)',
    { timeout: 10_000 },
    async () => {
      const socket = await dial(server.port);
      const everything = readAll(socket);
      const replies = [readBytes(socket, 'Hello World!\nHELLO'.length)];
      socket.write('hello');
      await replies[0];
      const world = readBytes(socket, 'WORLD'.length);
      socket.write('world');
      await world;
      socket.write('exit');
      assert.equal(
        (await everything).toString(),
        'Hello World!\nHELLOWORLD',
        'the server closed the session',
      );
    },
  );

  it('passes binary and UTF-8 through, upper-casing ASCII letters only', async () => {
    const socket = await dial(server.port, '127.0.0.1', { allowHalfOpen: true });
    const text = readAll(socket);
    socket.end(Buffer.concat([Buffer.from('abc é ü\n'), Buffer.from([0, 255, 0x61])]));
    const received = await text;
    assert.deepEqual(
      received,
      Buffer.concat([Buffer.from('Hello World!\nABC é ü\n'), Buffer.from([0, 255, 0x41])]),
    );
  });
});
