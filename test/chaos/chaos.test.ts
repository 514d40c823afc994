import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import {
  closeTestBed,
  echoThrough,
  type ForwardTestBed,
  forwardTestBed,
  payload,
  startForwarder,
} from '../forward/helpers.js';
import { runCli, startServer, TEST_TOKEN } from '../helpers.js';
import { dial, readAll } from '../raw/helpers.js';

describe('sockit chaos', { timeout: 120_000 }, () => {
  let dir: ForwardTestBed['dir'];
  let env: ForwardTestBed['env'];
  let echo: ForwardTestBed['echo'];
  before(async () => {
    ({ dir, env, echo } = await forwardTestBed('sockit-chaos-'));
  });
  after(() => closeTestBed({ dir, echo }));

  it('latency adds at least its delay to every sockit ping round trip', async () => {
    const server = await startServer();
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', server.address, '--toxic', 'latency:down:150ms'],
      env,
    );
    try {
      const result = await runCli(['ping', '-c', '3', '--json', `127.0.0.1:${chaos.port}`], {
        env: { ...env, SOCKIT_TOKEN: TEST_TOKEN },
      });
      assert.equal(result.code, 0, result.stderr);
      const { rttMs } = JSON.parse(result.stdout) as { rttMs: number[] };
      assert.equal(rttMs.length, 3);
      for (const rtt of rttMs) assert.ok(rtt >= 150, `round trip ${rtt} ms is under the 150 ms latency`);
    } finally {
      await chaos.stop();
      await server.stop();
    }
  });

  it('limit-data closes the connection at exactly N bytes; slicer delivers byte-exact', async () => {
    const limited = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'limit-data:down:1000'],
      env,
    );
    const sliced = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'slicer:both:7:variation=3'],
      env,
    );
    try {
      const socket = await dial(limited.port, '127.0.0.1', { allowHalfOpen: true });
      socket.write(payload(5000));
      const got = await readAll(socket);
      assert.equal(got.length, 1000);
      const bytes = payload(100_000);
      assert.ok((await echoThrough(sliced.port, bytes)).equals(bytes));
    } finally {
      await Promise.all([limited.stop(), sliced.stop()]);
    }
  });

  it("the timeout toxic makes a client's own timeout fire", async () => {
    const server = await startServer();
    const chaos = await startForwarder('chaos', ['127.0.0.1:0', server.address, '-t', 'timeout:both:0'], env);
    try {
      const result = await runCli(['ping', '--connect-timeout', '400ms', `127.0.0.1:${chaos.port}`], { env });
      assert.equal(result.code, 4, result.stderr);
      assert.match(result.stderr, /^sockit: TIMEOUT: /);
    } finally {
      await chaos.stop();
      await server.stop();
    }
  });

  it('a toxic with a probability applies to about that share of connections, each all or nothing', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'limit-data:down:3:50%', '-q'],
      env,
    );
    try {
      const replies: string[] = [];
      const total = 300;
      // Ten at a time, well under the forwarder's client cap (-m 100).
      for (let i = 0; i < total; i += 10) {
        const batch = Array.from({ length: 10 }, () => echoThrough(chaos.port, Buffer.from('abcdef')));
        for (const reply of await Promise.all(batch)) replies.push(reply.toString());
      }
      const cut = replies.filter((reply) => reply === 'abc').length;
      assert.equal(cut + replies.filter((reply) => reply === 'abcdef').length, total, replies.join(' '));
      // Binomial(300, 0.5): a standard deviation of 8.7, so 105-195 is more than 5 of them.
      assert.ok(cut >= 105 && cut <= 195, `limit-data applied to ${cut} of ${total} connections`);
    } finally {
      await chaos.stop();
    }
  });

  it("slicer's delay spaces the pieces; the bytes arrive exact", async () => {
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'slicer:down:100:delay=20ms'],
      env,
    );
    try {
      const bytes = payload(2000);
      const started = performance.now();
      const got = await echoThrough(chaos.port, bytes);
      const ms = performance.now() - started;
      assert.ok(got.equals(bytes));
      // At least 20 pieces of 100 bytes (more where the echo came back in several chunks), each
      // 20 ms after the one before: the last leaves 19 delays after the first.
      assert.ok(ms >= 19 * 20, `2000 bytes in 100-byte pieces 20 ms apart took ${Math.round(ms)} ms`);
    } finally {
      await chaos.stop();
    }
  });

  it('timeout with a time forwards nothing and closes the connection after that time', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'timeout:both:300ms'],
      env,
    );
    try {
      const socket = await dial(chaos.port, '127.0.0.1', { allowHalfOpen: true });
      const connected = performance.now();
      const got = readAll(socket);
      socket.write('held');
      const bytes = await got;
      const ms = performance.now() - connected;
      assert.equal(bytes.length, 0, 'the echo target got nothing to answer');
      assert.ok(ms >= 300, `closed after ${Math.round(ms)} ms, before the 300 ms timeout`);
    } finally {
      await chaos.stop();
    }
  });

  it('reset-peer resets the client; slow-close carries the EOF late', async () => {
    const reset = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'reset-peer:both:50ms'],
      env,
    );
    const slow = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'slow-close:down:300ms'],
      env,
    );
    try {
      const socket = await dial(reset.port);
      const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
      assert.equal(error.code, 'ECONNRESET');
      const started = performance.now();
      assert.equal((await echoThrough(slow.port, Buffer.from('x'))).toString(), 'x');
      assert.ok(performance.now() - started >= 300, 'the EOF came at least 300 ms late');
    } finally {
      await Promise.all([reset.stop(), slow.stop()]);
    }
  });

  it('bandwidth holds a stream to its rate', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-t', 'bandwidth:down:200KB'],
      env,
    );
    try {
      const started = performance.now();
      const bytes = payload(100_000);
      assert.ok((await echoThrough(chaos.port, bytes)).equals(bytes));
      assert.ok(performance.now() - started >= 400, '100 kB at 200 kB/s takes at least 0.4 s');
    } finally {
      await chaos.stop();
    }
  });
});
