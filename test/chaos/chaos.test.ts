import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseToxicSpec, ToxicSet } from '../../src/raw/chaos/index.js';
import { startFiles } from '../files/fixtures.js';
import {
  closeTestBed,
  echoThrough,
  type ForwardTestBed,
  forwardTestBed,
  payload,
  startForwarder,
} from '../forward/helpers.js';
import { runCli, startServer, TEST_TOKEN } from '../helpers.js';
import { closedPort, dial, launch, readAll } from '../raw/helpers.js';
import { requireTool } from '../tools.js';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('toxic specs', () => {
  it('parses the flag syntax and fills in defaults', () => {
    const set = new ToxicSet(false);
    const latency = set.add(parseToxicSpec('latency:down:200ms:jitter=50ms'));
    assert.deepEqual(
      { ...latency, id: 0 },
      {
        id: 0,
        name: 'latency_down',
        type: 'latency',
        stream: 'down',
        toxicity: 1,
        attributes: { latency: 200, jitter: 50 },
      },
    );
    assert.deepEqual(set.add(parseToxicSpec('bandwidth:up:100KB/s:p=50%')).attributes, { rate: 100_000 });
    assert.deepEqual(set.add(parseToxicSpec('slicer:16:variation=4:delay=1ms:name=s')).attributes, {
      size: 16,
      variation: 4,
      delay: 1,
    });
    assert.equal(set.list().length, 3);
    assert.throws(() => set.add(parseToxicSpec('latency:down:1s')), /a toxic named "latency_down" exists/);
    assert.throws(() => parseToxicSpec('teleport:up'), /unknown type "teleport"/);
    assert.throws(() => parseToxicSpec('latency:soon'), /"soon" is not a time/);
    assert.throws(() => set.add(parseToxicSpec('loss:up:10%')), /loss acts on datagrams/);
    assert.throws(() => new ToxicSet(true).add(parseToxicSpec('slicer:8')), /slicer acts on streams/);
  });
});

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

  it('a put cut by limit-data resumes byte-exact once the toxic is removed through the control API', async (t) => {
    const curl = requireTool(t, 'curl');
    if (!curl) return;
    const files = await startFiles();
    const control = await closedPort();
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', files.address, '-t', 'limit-data:up:400000', '--control', `127.0.0.1:${control}`],
      env,
    );
    try {
      const source = join(files.local, 'big.bin');
      const bytes = payload(2 * 1024 * 1024);
      writeFileSync(source, bytes);
      const clientEnv = { ...env, SOCKIT_TOKEN: TEST_TOKEN };
      const closed = once(files.server, 'disconnect');
      const cut = await runCli(['put', '--quiet', source, `127.0.0.1:${chaos.port}`, 'big.bin'], {
        env: clientEnv,
      });
      assert.notEqual(cut.code, 0, 'the upload is cut by limit-data');
      await closed; // the server saw the connection go and kept the partial file
      const removed = launch(curl, [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '-X',
        'DELETE',
        `http://127.0.0.1:${control}/toxics/limit-data_up`,
      ]);
      await removed.exited;
      assert.equal(removed.stdout().toString(), '204');
      const resumed = await runCli(
        ['put', '--quiet', '--resume', source, `127.0.0.1:${chaos.port}`, 'big.bin'],
        {
          env: clientEnv,
        },
      );
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(sha256(readFileSync(join(files.root, 'big.bin'))), sha256(bytes));
    } finally {
      await chaos.stop();
      await files.stop();
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

  it('the control API lists, adds and removes toxics, driven by curl', async (t) => {
    const curl = requireTool(t, 'curl');
    if (!curl) return;
    const control = await closedPort();
    const chaos = await startForwarder(
      'chaos',
      [
        '127.0.0.1:0',
        `127.0.0.1:${echo.port}`,
        '-t',
        'latency:down:10ms',
        '--control',
        `127.0.0.1:${control}`,
      ],
      env,
    );
    const api = `http://127.0.0.1:${control}/toxics`;
    const call = async (...args: string[]): Promise<{ status: number; body: string }> => {
      const run = launch(curl, ['-s', '-w', '\n%{http_code}', ...args]);
      await run.exited;
      const text = run.stdout().toString();
      const cut = text.lastIndexOf('\n');
      return { status: Number(text.slice(cut + 1)), body: text.slice(0, cut) };
    };
    try {
      const listed = await call(api);
      assert.equal(listed.status, 200);
      assert.deepEqual(JSON.parse(listed.body), [
        {
          name: 'latency_down',
          type: 'latency',
          stream: 'down',
          toxicity: 1,
          attributes: { latency: 10, jitter: 0 },
        },
      ]);
      const added = await call('-d', '{"type":"limit-data","stream":"down","attributes":{"bytes":3}}', api);
      assert.equal(added.status, 201, added.body);
      assert.equal((JSON.parse(added.body) as { name: string }).name, 'limit-data_down');
      assert.equal((await echoThrough(chaos.port, Buffer.from('abcdef'))).toString(), 'abc');
      assert.equal((await call('-d', '{"spec":"slicer:both:2"}', api)).status, 201);
      assert.equal((await call('-d', '{"spec":"slicer:both:2"}', api)).status, 409);
      const bad = await call('-d', 'not json', api);
      assert.equal(bad.status, 400);
      assert.equal((JSON.parse(bad.body) as { error: { code: string } }).error.code, 'USAGE');
      assert.equal((await call('-X', 'DELETE', `${api}/limit-data_down`)).status, 204);
      assert.equal((await call('-X', 'DELETE', `${api}/limit-data_down`)).status, 404);
      assert.equal((await echoThrough(chaos.port, Buffer.from('abcdef'))).toString(), 'abcdef');
      assert.equal((await call('-X', 'DELETE', api)).status, 204);
      assert.deepEqual(JSON.parse((await call(api)).body), []);
    } finally {
      await chaos.stop();
    }
  });

  it('refuses a control address off loopback', async () => {
    const result = await runCli(['chaos', '127.0.0.1:0', '127.0.0.1:1', '--control', '0.0.0.0:0'], { env });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /the control API listens on loopback TCP only/);
  });

  it('udp: loss drops every datagram, duplicate sends each twice', async () => {
    const target = dgram.createSocket('udp4');
    target.on('message', (message, info) => target.send(message, info.port, info.address));
    await new Promise<void>((resolve) => target.bind(0, '127.0.0.1', resolve));
    const upstream = `udp://127.0.0.1:${target.address().port}`;
    const dup = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', upstream, '-t', 'duplicate:down:100%'],
      env,
    );
    const lossy = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', upstream, '-t', 'loss:up:100%', '-t', 'duplicate:down:100%'],
      env,
    );
    const client = dgram.createSocket('udp4');
    try {
      const replies: string[] = [];
      const twice = new Promise<void>((resolve) =>
        client.on('message', (message) => {
          replies.push(String(message));
          if (replies.length === 2) resolve();
        }),
      );
      client.send('lost', lossy.port, '127.0.0.1');
      client.send('twice', dup.port, '127.0.0.1');
      await twice;
      assert.deepEqual(replies, ['twice', 'twice']);
      await lossy.stop();
      // The lossy forwarder heard the datagram and the target never answered it: it was dropped.
      assert.match(lossy.stderr(), /up 1 datagrams, down 0 datagrams, \d+ ms, closed: shutting down/);
    } finally {
      client.close();
      target.close();
      await Promise.all([dup.stop(), lossy.stop()]);
    }
  });
});
