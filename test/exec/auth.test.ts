import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/client/client.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrameToBuffer, type Frame } from '../../src/protocol/frame.js';
import { parseAddress } from '../../src/transport/address.js';
import { runCli, tempDir } from '../helpers.js';
import { startExec } from './helpers.js';

/** Sends raw frames in one write and collects every frame until the server closes. */
async function rawSession(address: string, frames: Record<string, unknown>[]): Promise<Frame[]> {
  const target = parseAddress(address);
  if (target.kind !== 'tcp') throw new Error('tcp only');
  const socket = net.connect(target.port, target.host);
  const decoder = new FrameDecoder();
  const received: Frame[] = [];
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let frame = decoder.next(); frame; frame = decoder.next()) received.push(frame);
  });
  socket.write(Buffer.concat(frames.map((header) => encodeFrameToBuffer(header as { type: string }))));
  // Half-close: the server answers what it got, then the socket ends.
  socket.end();
  await once(socket, 'close');
  return received;
}

describe('exec never runs for an unauthenticated or wrongly authenticated client', () => {
  let env: Awaited<ReturnType<typeof startExec>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let emptyState: Awaited<ReturnType<typeof tempDir>>;
  let marker: string;
  const touch = () => ['touch', marker];

  before(async () => {
    // Even an operator who lists exec among the open services does not open it.
    env = await startExec({}, { openServices: ['echo', 'exec'] });
    dir = await tempDir('sockit-exec-auth-');
    emptyState = await tempDir('sockit-exec-nostate-');
    marker = join(dir.path, 'marker');
  });
  after(async () => {
    await env.stop();
    await dir.cleanup();
    await emptyState.cleanup();
  });

  test('without a token: AUTH_REQUIRED, nothing runs', async () => {
    const client = await connect(env.address, { stateDir: emptyState.path, env: {} });
    try {
      assert.equal(client.authenticated, false);
      await assert.rejects(client.exec(touch()), { code: 'AUTH_REQUIRED' });
      await assert.rejects(client.exec(touch(), { input: 'x' }), { code: 'AUTH_REQUIRED' });
    } finally {
      await client.close();
    }
    assert.equal(existsSync(marker), false);
  });

  test('with a wrong token: AUTH_FAILED at connect, nothing runs', async () => {
    await assert.rejects(connect(env.address, { token: 'wrong', stateDir: emptyState.path }), {
      code: 'AUTH_FAILED',
    });
    assert.equal(existsSync(marker), false);
  });

  test('raw frames: exec before auth, and exec pipelined behind a wrong proof, never run', async () => {
    const beforeAuth = await rawSession(env.address, [
      { type: 'hello', version: 1, client: 'raw' },
      { type: 'exec', id: 1, argv: touch() },
    ]);
    assert.ok(beforeAuth.some((frame) => frame.header.code === 'AUTH_REQUIRED' && frame.header.id === 1));
    const wrongProof = await rawSession(env.address, [
      { type: 'hello', version: 1, client: 'raw' },
      { type: 'auth', proof: Buffer.alloc(32).toString('base64') },
      { type: 'exec', id: 1, argv: touch() },
    ]);
    assert.ok(wrongProof.some((frame) => frame.header.code === 'AUTH_FAILED'));
    assert.ok(!wrongProof.some((frame) => frame.header.type === 'started'));
    const noHello = await rawSession(env.address, [{ type: 'exec', id: 1, argv: touch() }]);
    assert.ok(!noHello.some((frame) => frame.header.type === 'started'));
    assert.equal(existsSync(marker), false);
  });

  test('the CLI without a token or with a wrong one exits 255 and runs nothing', async () => {
    for (const token of ['', 'wrong-token']) {
      const result = await runCli(['exec', env.address, '--', ...touch()], {
        env: { SOCKIT_TOKEN: token, SOCKIT_STATE_DIR: emptyState.path },
      });
      assert.equal(result.code, 255, result.stderr);
      assert.match(result.stderr, token ? /AUTH_FAILED/ : /AUTH_REQUIRED/);
    }
    assert.equal(existsSync(marker), false);
  });

  test('the right token runs it (the marker proves the tests above could have seen it)', async () => {
    assert.equal((await env.client.exec(touch())).code, 0);
    assert.equal(existsSync(marker), true);
  });
});

test('with --insecure-no-auth (the loud, explicit flag) exec runs without a token', async () => {
  const env = await startExec({}, { token: undefined, insecureNoAuth: true });
  const dir = await tempDir('sockit-exec-noauth-');
  try {
    const client = await connect(env.address, { env: {}, stateDir: dir.path });
    try {
      assert.equal((await client.exec(['echo', 'open'])).stdout.toString(), 'open\n');
    } finally {
      await client.close();
    }
  } finally {
    await env.stop();
    await dir.cleanup();
  }
});
