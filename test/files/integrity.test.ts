import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Client } from '../../src/client/client.js';
import { connect } from '../../src/client/client.js';
import type { FrameHeader } from '../../src/protocol/frame.js';
import type { Service } from '../../src/server/service.js';
import { startServer, TEST_TOKEN, tempDir } from '../helpers.js';
import { filesAndClientPerSuite, isCode, treeOf } from './fixtures.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Starts a raw put and resolves once the server said put-ready. */
async function openPut(client: Client, header: Record<string, unknown>) {
  const request = client.open({ type: 'put', ...header }, undefined, {
    final: (frame) => frame.type === 'put-done',
  });
  const ready = await new Promise<FrameHeader>((resolve, reject) => {
    request.onFrame = (frame) => resolve(frame.header);
    request.done.then(() => reject(new Error('ended before put-ready')), reject);
  });
  return { request, ready };
}

describe('integrity of uploads', () => {
  const suite = filesAndClientPerSuite();

  test('a flipped byte is INTEGRITY and nothing is published, not even a partial', async () => {
    const { files, client } = suite;
    const data = randomBytes(1024 * 1024);
    const { request, ready } = await openPut(client, { path: 'flip.bin', fileSize: data.length });
    assert.equal(ready.offset, 0);
    const flipped = Buffer.from(data);
    flipped[654_321]! ^= 0x01;
    for (let at = 0; at < flipped.length; at += 256 * 1024) {
      await request.write({ type: 'data' }, flipped.subarray(at, at + 256 * 1024));
    }
    request.send({ type: 'put-end', sha256: sha256(data) });
    await assert.rejects(request.done, isCode('INTEGRITY'));
    assert.deepEqual(await treeOf(files.root), []);
  });

  for (const [what, name, sent] of [
    ['more', 'long.bin', 11],
    ['fewer', 'short.bin', 5],
  ] as const) {
    test(`${what} bytes than announced is INTEGRITY; nothing published`, async () => {
      const { files, client } = suite;
      const { request } = await openPut(client, { path: name, fileSize: 10 });
      request.send({ type: 'data' }, Buffer.alloc(sent));
      request.send({ type: 'put-end', sha256: sha256(Buffer.alloc(sent)) });
      await assert.rejects(request.done, isCode('INTEGRITY'));
      assert.deepEqual(await treeOf(files.root), []);
    });
  }

  test('malformed puts are BAD_REQUEST and the connection stays usable', async () => {
    const { files, client } = suite;
    await assert.rejects(client.call({ type: 'put', path: 'x' }), isCode('BAD_REQUEST'));
    await assert.rejects(client.call({ type: 'put', path: 'x', fileSize: -1 }), isCode('BAD_REQUEST'));
    await assert.rejects(client.call({ type: 'put', path: 'x', fileSize: 1.5 }), isCode('BAD_REQUEST'));
    await assert.rejects(client.call({ type: 'put', path: 42, fileSize: 1 }), isCode('BAD_REQUEST'));
    await assert.rejects(
      client.call({ type: 'put', path: 'x', fileSize: 1, mode: 0o17777 }),
      isCode('BAD_REQUEST'),
    );
    await assert.rejects(client.call({ type: 'get', path: 'x', offset: 'zero' }), isCode('BAD_REQUEST'));
    const { request } = await openPut(client, { path: 'bad-end.bin', fileSize: 0 });
    request.send({ type: 'put-end', sha256: 'not-a-hash' });
    await assert.rejects(request.done, isCode('BAD_REQUEST'));
    const { request: wrong } = await openPut(client, { path: 'bad-frame.bin', fileSize: 1 });
    wrong.send({ type: 'stdin' }, Buffer.from('x'));
    await assert.rejects(wrong.done, isCode('BAD_REQUEST'));
    assert.ok((await client.ping()) >= 0);
    assert.deepEqual(await treeOf(files.root), []);
  });
});

describe('integrity of downloads', () => {
  /** A files server that lies: announces `announced`, sends `sent`, claims `claimed`'s hash. */
  function lyingService(announced: number, sent: Buffer, claimed: Buffer): Service {
    return {
      name: 'files',
      requests: {
        get(request) {
          request.send({ type: 'get-start', fileSize: announced, mode: 0o644, mtimeMs: 0 });
          request.send({ type: 'data' }, sent);
          request.reply({ type: 'get-end', sha256: sha256(claimed) });
        },
      },
    };
  }

  async function downloadFrom(service: Service): Promise<{ error: unknown; left: string[] }> {
    const server = await startServer({ services: [service] });
    const local = await tempDir();
    try {
      const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir, env: {} });
      const error = await client.get('x.bin', join(local.path, 'x.bin')).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      await client.close();
      return { error, left: await treeOf(local.path) };
    } finally {
      await local.cleanup();
      await server.stop();
    }
  }

  test('a hash mismatch is INTEGRITY; nothing appears locally, no temp file is left', async () => {
    const { error, left } = await downloadFrom(lyingService(5, Buffer.from('hello'), Buffer.from('hellO')));
    assert.ok(isCode('INTEGRITY')(error), String(error));
    assert.deepEqual(left, []);
  });

  test('more bytes than announced is INTEGRITY; nothing appears locally', async () => {
    const { error, left } = await downloadFrom(lyingService(3, Buffer.from('hello'), Buffer.from('hello')));
    assert.ok(isCode('INTEGRITY')(error), String(error));
    assert.deepEqual(left, []);
  });

  test('fewer bytes than announced is INTEGRITY; nothing appears locally', async () => {
    const { error, left } = await downloadFrom(lyingService(9, Buffer.from('hello'), Buffer.from('hello')));
    assert.ok(isCode('INTEGRITY')(error), String(error));
    assert.deepEqual(left, []);
  });
});
