import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Client } from '../../src/client/client.js';
import { connect } from '../../src/client/client.js';
import { CHECKSUMS, type ChecksumName } from '../../src/protocol/files.js';
import type { FrameHeader } from '../../src/protocol/frame.js';
import type { Service } from '../../src/server/service.js';
import { digestOf } from '../../src/storage/checksum.js';
import { startServer, TEST_TOKEN, tempDir } from '../helpers.js';
import { checksumFile, filesAndClientPerSuite, isCode, sha256File, treeOf } from './fixtures.js';

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

/**
 * Waits until the server has wound down a refused upload of `path` (its partial file removed):
 * the core answers a bad follow-up at once and the service cleans up after, so the test asks the
 * server's own upload lock, which a new upload of the name waits on, then removes that upload.
 */
async function afterWindDown(client: Client, root: string, path: string): Promise<void> {
  const { request } = await openPut(client, { path, fileSize: 0 });
  request.send({ type: 'put-end', sha256: sha256(Buffer.alloc(0)) });
  await request.done;
  await rm(join(root, path));
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

  for (const name of CHECKSUMS) {
    test(`${name}: a flipped byte is INTEGRITY and nothing is published`, async () => {
      const { files, client } = suite;
      const data = randomBytes(512 * 1024);
      const { request, ready } = await openPut(client, {
        path: `flip-${name}.bin`,
        fileSize: data.length,
        checksums: [name],
      });
      assert.equal(ready.checksum, name, 'the server uses the one checksum offered');
      const flipped = Buffer.from(data);
      flipped[123_456]! ^= 0x80;
      await request.write({ type: 'data' }, flipped);
      request.send({ type: 'put-end', checksum: name, digest: await digestOf(name, data) });
      await assert.rejects(request.done, isCode('INTEGRITY'));
      assert.deepEqual(await treeOf(files.root), []);
    });
  }

  test('an older client that offers no checksum gets SHA-256 in the fields it knows', async () => {
    const { files, client } = suite;
    const data = randomBytes(100_000);
    const { request, ready } = await openPut(client, { path: 'old.bin', fileSize: data.length });
    assert.equal(ready.checksum, 'sha256');
    request.send({ type: 'data' }, data);
    request.send({ type: 'put-end', sha256: sha256(data) });
    const done = await request.done;
    assert.equal(done.header.sha256, sha256(data));
    assert.equal(await sha256File(join(files.root, 'old.bin')), sha256(data));
    await rm(join(files.root, 'old.bin'));
  });

  test('the client library asked for sha256 only, or offering what the server lacks', async () => {
    const { files, client } = suite;
    const source = join(files.local, 'only-sha.bin');
    await writeFile(source, randomBytes(70_000));
    const put = await client.put(source, 'only-sha.bin', { checksum: 'sha256' });
    assert.equal(put.checksum, 'sha256');
    assert.equal(put.digest, await sha256File(source));
    const got = await client.get('only-sha.bin', join(files.local, 'only-sha.back'), { checksum: 'sha256' });
    assert.equal(got.checksum, 'sha256');
    assert.equal(got.digest, await sha256File(got.localPath));
    const fast = await client.get('only-sha.bin', join(files.local, 'fast.back'));
    assert.equal(fast.checksum, 'xxh64');
    assert.equal(fast.digest, await checksumFile(fast.localPath, 'xxh64'));
    await assert.rejects(
      client.call({ type: 'put', path: 'md4.bin', fileSize: 1, checksums: ['md4'] }),
      isCode('UNSUPPORTED'),
    );
    await assert.rejects(
      client.call({ type: 'get', path: 'only-sha.bin', checksums: 'xxh64' }),
      isCode('BAD_REQUEST'),
    );
    await rm(join(files.root, 'only-sha.bin'));
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
    await afterWindDown(client, files.root, 'bad-end.bin');
    await afterWindDown(client, files.root, 'bad-frame.bin');
    assert.deepEqual(await treeOf(files.root), []);
  });
});

describe('integrity of downloads', () => {
  /**
   * A files server that lies: announces `announced`, sends `sent`, claims `claimed`'s digest.
   * Without `checksum` it is an older server that names none and sends `sha256`.
   */
  function lyingService(announced: number, sent: Buffer, claimed: Buffer, checksum?: ChecksumName): Service {
    return {
      name: 'files',
      requests: {
        async get(request) {
          const named = checksum ? { checksum } : {};
          request.send({ type: 'get-start', fileSize: announced, mode: 0o644, mtimeMs: 0, ...named });
          request.send({ type: 'data' }, sent);
          const digest = await digestOf(checksum ?? 'sha256', claimed);
          request.reply({ type: 'get-end', ...(checksum ? { checksum, digest } : { sha256: digest }) });
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

  for (const name of CHECKSUMS) {
    test(`${name}: a flipped byte in a download is INTEGRITY; nothing appears locally`, async () => {
      const { error, left } = await downloadFrom(
        lyingService(5, Buffer.from('hello'), Buffer.from('hellO'), name),
      );
      assert.ok(isCode('INTEGRITY')(error), String(error));
      assert.deepEqual(left, []);
    });
  }

  test('an older server that names no checksum: the download is verified with SHA-256', async () => {
    const body = Buffer.from('hello older server');
    const server = await startServer({ services: [lyingService(body.length, body, body)] });
    const local = await tempDir();
    try {
      const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir, env: {} });
      const got = await client.get('x.bin', join(local.path, 'x.bin'));
      assert.equal(got.checksum, 'sha256');
      assert.equal(got.digest, sha256(body));
      assert.equal(await sha256File(got.localPath), sha256(body));
      await client.close();
    } finally {
      await local.cleanup();
      await server.stop();
    }
  });

  test('an older server that names no checksum: the upload sends the sha256 field it knows', async () => {
    const body = randomBytes(300_000);
    let ended: FrameHeader | undefined;
    const older: Service = {
      name: 'files',
      requests: {
        async put(request) {
          const received: Buffer[] = [];
          await new Promise<void>((resolve) => {
            request.onFrame = (frame) => {
              if (frame.header.type === 'data') received.push(Buffer.from(frame.body));
              else {
                ended = frame.header;
                resolve();
              }
            };
            request.send({ type: 'put-ready', offset: 0 });
          });
          const digest = sha256(Buffer.concat(received));
          request.reply({ type: 'put-done', fileSize: body.length, sha256: digest });
        },
      },
    };
    const server = await startServer({ services: [older] });
    const local = await tempDir();
    try {
      const source = join(local.path, 'up.bin');
      await writeFile(source, body);
      const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir, env: {} });
      const put = await client.put(source, 'up.bin');
      assert.equal(put.checksum, 'sha256');
      assert.equal(put.digest, sha256(body));
      assert.equal(ended?.sha256, sha256(body), 'put-end carries the older "sha256" field');
      await client.close();
    } finally {
      await local.cleanup();
      await server.stop();
    }
  });

  test('a server that picks a checksum not offered is UNSUPPORTED; nothing appears locally', async () => {
    const { error, left } = await downloadFrom(
      lyingService(5, Buffer.from('hello'), Buffer.from('hello'), 'md5' as ChecksumName),
    );
    assert.ok(isCode('UNSUPPORTED')(error), String(error));
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
