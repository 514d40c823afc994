import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import type { Client } from '../../src/client/client.js';
import { connect } from '../../src/client/client.js';
import type { TransferOptions } from '../../src/client/files.js';
import {
  acceptedCompression,
  FILES_FRAMES,
  MAX_DECOMPRESSED_CHUNK_BYTES,
  negotiateCompression,
  partialUploadName,
} from '../../src/protocol/files.js';
import type { FrameHeader } from '../../src/protocol/frame.js';
import type { Service } from '../../src/server/service.js';
import { digestOf } from '../../src/storage/checksum.js';
import { AVAILABLE_COMPRESSIONS, encodeChunks } from '../../src/storage/chunk-compression.js';
import { runCli, startServer, TEST_TOKEN, tempDir } from '../helpers.js';
import { filesAndClientPerSuite, isCode, sha256File, treeOf } from './fixtures.js';

const MiB = 1024 * 1024;
const PREFERRED = AVAILABLE_COMPRESSIONS[0]!;

/** `size` bytes of log lines, every one different: about 4× smaller under deflate. */
function logText(size: number): Buffer {
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < size; i++) {
    const line = `2026-12-01T23:${String(i % 60).padStart(2, '0')}:00Z INFO req=${(i * 2654435761) % 1e9} GET /api/v1/items?page=${i % 97} status=200 took=${i % 1000}ms\n`;
    lines.push(line);
    bytes += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

/** Every chunk of `data` as `encodeChunks` would send it. */
async function encodedTypes(data: Buffer): Promise<string[]> {
  async function* chunks() {
    for (let at = 0; at < data.length; at += MiB) yield data.subarray(at, at + MiB);
  }
  const types: string[] = [];
  for await (const chunk of encodeChunks(chunks(), PREFERRED)) types.push(chunk.type);
  return types;
}

/** Starts a raw request and resolves with its first frame (put-ready, get-start). */
async function openRaw(client: Client, header: Record<string, unknown>, final: string) {
  const request = client.open(header as FrameHeader, undefined, { final: (frame) => frame.type === final });
  const first = await new Promise<FrameHeader>((resolve, reject) => {
    request.onFrame = (frame) => resolve(frame.header);
    request.done.then(() => reject(new Error(`ended before the first frame of ${header.type}`)), reject);
  });
  return { request, first };
}

describe('compression negotiation (protocol)', () => {
  test('the first offered compression this side has; none offered or none in common is none', () => {
    assert.equal(negotiateCompression(['zstd', 'deflate'], ['deflate']), 'deflate');
    assert.equal(negotiateCompression(['deflate', 'zstd'], ['zstd', 'deflate']), 'deflate');
    assert.equal(negotiateCompression(undefined, ['deflate']), undefined, 'an older client');
    assert.equal(negotiateCompression(['brotli'], ['deflate']), undefined);
    assert.equal(negotiateCompression([], ['deflate']), undefined);
    assert.throws(() => negotiateCompression('deflate', ['deflate']), isCode('BAD_REQUEST'));
    assert.equal(acceptedCompression(undefined, ['deflate']), undefined, 'an older server');
    assert.throws(() => acceptedCompression('deflate', []), isCode('UNSUPPORTED'));
  });

  test('deflate is always there; zstd exactly where node:zlib has it', async () => {
    const zlib = await import('node:zlib');
    assert.ok(AVAILABLE_COMPRESSIONS.includes('deflate'));
    assert.equal(
      AVAILABLE_COMPRESSIONS.includes('zstd'),
      typeof (zlib as Record<string, unknown>).zstdCompress === 'function',
    );
  });

  test('chunks of text are compressed, chunks of random bytes go plain', async () => {
    assert.deepEqual(await encodedTypes(logText(3 * MiB)), Array(3).fill(FILES_FRAMES.dataCompressed));
    assert.deepEqual(await encodedTypes(randomBytes(3 * MiB)), Array(3).fill(FILES_FRAMES.data));
  });
});

describe('compressed transfers', () => {
  const suite = filesAndClientPerSuite();

  test('a text file goes both ways in far fewer bytes, byte-exact and verified', async () => {
    const { files, client } = suite;
    const text = logText(5 * MiB + 12345);
    const source = join(files.local, 'text.log');
    await writeFile(source, text);
    const put = await client.put(source, 'text.log', { compress: true });
    assert.equal(put.compression, PREFERRED);
    assert.ok(put.wireBytes < text.length / 3, `put sent ${put.wireBytes} of ${text.length} bytes`);
    assert.equal(put.digest, await digestOf(put.checksum, text), 'the checksum covers the plain bytes');
    assert.equal(await sha256File(join(files.root, 'text.log')), await sha256File(source));

    const target = join(files.local, 'text-back.log');
    const got = await client.get('text.log', target, { compress: true });
    assert.equal(got.compression, PREFERRED);
    assert.ok(got.wireBytes < text.length / 3, `get received ${got.wireBytes} of ${text.length} bytes`);
    assert.equal(await sha256File(target), await sha256File(source));
  });

  test('a random file with compression sends the same bytes at about the same cost', async () => {
    const { files, client } = suite;
    const data = randomBytes(16 * MiB);
    const source = join(files.local, 'random.bin');
    await writeFile(source, data);
    const cost = async (options: TransferOptions) => {
      const before = process.cpuUsage();
      const result = await client.put(source, 'random.bin', { overwrite: true, ...options });
      const used = process.cpuUsage(before);
      return { result, cpuMs: (used.user + used.system) / 1000 };
    };
    await cost({}); // warm up: file cache, buffers, the hash
    const plain = await cost({});
    const compressed = await cost({ compress: true });
    assert.equal(compressed.result.compression, PREFERRED, 'negotiated all the same');
    assert.equal(plain.result.wireBytes, data.length);
    assert.equal(compressed.result.wireBytes, data.length, 'every chunk went plain');
    // Client and server share this process: both sides' CPU is in the figure. A compressor that
    // compressed each chunk would cost several times the plain transfer; the probe costs ~nothing.
    assert.ok(
      compressed.cpuMs < plain.cpuMs * 1.6 + 40,
      `--compress on random bytes took ${compressed.cpuMs} ms of CPU against ${plain.cpuMs} ms plain`,
    );
    assert.equal(await sha256File(join(files.root, 'random.bin')), await sha256File(source));
  });

  test('a cancelled compressed upload resumes compressed and verifies', async () => {
    const { files, client } = suite;
    const text = logText(12 * MiB);
    const source = join(files.local, 'resume.log');
    await writeFile(source, text);
    const controller = new AbortController();
    await assert.rejects(
      client.put(source, 'resume.log', {
        compress: true,
        signal: controller.signal,
        onProgress: ({ bytes }) => {
          if (bytes >= 4 * MiB) controller.abort();
        },
      }),
      isCode('CANCELLED'),
    );
    const resumed = await client.put(source, 'resume.log', { compress: true, resume: true });
    assert.ok(resumed.resumedFrom > 0, 'the kept partial was used');
    assert.equal(resumed.compression, PREFERRED);
    assert.ok(resumed.wireBytes < (text.length - resumed.resumedFrom) / 3);
    assert.equal(await sha256File(join(files.root, 'resume.log')), await sha256File(source));
  });

  test('a compressed chunk that expands past the limit (a zip bomb) is INTEGRITY; nothing published', async () => {
    const { files, client } = suite;
    const bomb = deflateRawSync(Buffer.alloc(MAX_DECOMPRESSED_CHUNK_BYTES + MiB));
    assert.ok(bomb.length < 64 * 1024, 'a small frame');
    const { request, first } = await openRaw(
      client,
      { type: 'put', path: 'bomb.bin', fileSize: 64 * MiB, compress: ['deflate'] },
      'put-done',
    );
    assert.equal(first.compression, 'deflate');
    request.send({ type: FILES_FRAMES.dataCompressed }, bomb);
    await assert.rejects(request.done, isCode('INTEGRITY'));
    const left = (await treeOf(files.root)).filter(
      (name) => name === 'bomb.bin' || name === partialUploadName('bomb.bin'),
    );
    assert.deepEqual(left, [], 'no file, no partial');
    assert.ok(await client.ping(), 'the connection is still usable');
  });

  test('a corrupt compressed chunk is INTEGRITY; data-z without compression is BAD_REQUEST', async () => {
    const { files, client } = suite;
    const corrupt = await openRaw(
      client,
      { type: 'put', path: 'corrupt.bin', fileSize: MiB, compress: ['deflate'] },
      'put-done',
    );
    corrupt.request.send({ type: FILES_FRAMES.dataCompressed }, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await assert.rejects(corrupt.request.done, isCode('INTEGRITY'));
    const plain = await openRaw(client, { type: 'put', path: 'plain.bin', fileSize: MiB }, 'put-done');
    assert.equal(plain.first.compression, undefined, 'an older client offers none and gets none');
    plain.request.send({ type: FILES_FRAMES.dataCompressed }, deflateRawSync(Buffer.alloc(1000)));
    await assert.rejects(plain.request.done, isCode('BAD_REQUEST'));
    assert.deepEqual(
      (await treeOf(files.root)).filter(
        (name) => name.includes('corrupt') || name === partialUploadName('corrupt.bin'),
      ),
      [],
    );
  });

  test('put --compress and get --compress on the CLI report the compression and the bytes sent', async () => {
    const { files } = suite;
    const source = join(files.local, 'cli.log');
    await writeFile(source, logText(3 * MiB));
    const env = { SOCKIT_TOKEN: TEST_TOKEN };
    const put = await runCli(['put', '--json', '--compress', source, files.address, 'cli.log'], { env });
    assert.equal(put.code, 0, put.stderr);
    const done = JSON.parse(put.stdout.split('\n').find((line) => line.includes('"done"'))!);
    assert.equal(done.compression, PREFERRED);
    assert.ok(done.wireBytes < (3 * MiB) / 3, String(done.wireBytes));
    const target = join(files.local, 'cli-back.log');
    const get = await runCli(['get', '-z', files.address, 'cli.log', target], { env });
    assert.equal(get.code, 0, get.stderr);
    assert.equal((await stat(target)).size, 3 * MiB);
  });
});

describe('compression with an older peer', () => {
  test('an older server that names no compression gets plain data frames, and the put verifies', async () => {
    const body = logText(2 * MiB);
    const types = new Set<string>();
    const older: Service = {
      name: 'files',
      requests: {
        async put(request) {
          const received: Buffer[] = [];
          await new Promise<void>((resolve) => {
            request.onFrame = (frame) => {
              if (frame.header.type === 'put-end') resolve();
              else {
                types.add(frame.header.type);
                received.push(Buffer.from(frame.body));
              }
            };
            request.send({ type: 'put-ready', offset: 0 });
          });
          request.reply({
            type: 'put-done',
            fileSize: body.length,
            sha256: await digestOf('sha256', Buffer.concat(received)),
          });
        },
        async get(request) {
          request.send({ type: 'get-start', fileSize: body.length, mode: 0o644, mtimeMs: 0 });
          // As every sockit server sends them: chunks of at most 1 MiB (the catalogue's data limit).
          for (let at = 0; at < body.length; at += MiB)
            request.send({ type: 'data' }, body.subarray(at, at + MiB));
          request.reply({ type: 'get-end', sha256: await digestOf('sha256', body) });
        },
      },
    };
    const server = await startServer({ services: [older] });
    const local = await tempDir();
    try {
      const source = join(local.path, 'up.log');
      await writeFile(source, body);
      const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir, env: {} });
      const put = await client.put(source, 'up.log', { compress: true });
      assert.equal(put.compression, undefined);
      assert.equal(put.wireBytes, body.length);
      assert.deepEqual([...types], ['data'], 'no data-z to a server that did not agree');
      const got = await client.get('up.log', join(local.path, 'down.log'), { compress: true });
      assert.equal(got.compression, undefined);
      assert.equal(await sha256File(join(local.path, 'down.log')), await sha256File(source));
      await client.close();
    } finally {
      await local.cleanup();
      await server.stop();
    }
  });

  test('a server whose data-z chunk is a zip bomb: the download is INTEGRITY, nothing appears locally', async () => {
    const bombing: Service = {
      name: 'files',
      requests: {
        async get(request) {
          assert.deepEqual(request.header.compress, [...AVAILABLE_COMPRESSIONS]);
          request.send({
            type: 'get-start',
            fileSize: 64 * MiB,
            mode: 0o644,
            mtimeMs: 0,
            checksum: 'xxh64',
            compression: 'deflate',
          });
          request.send({ type: 'data-z' }, deflateRawSync(Buffer.alloc(MAX_DECOMPRESSED_CHUNK_BYTES + MiB)));
          request.reply({ type: 'get-end', checksum: 'xxh64', digest: '0'.repeat(16) });
        },
      },
    };
    const server = await startServer({ services: [bombing] });
    const local = await tempDir();
    try {
      const client = await connect(server.address, { token: TEST_TOKEN, stateDir: server.stateDir, env: {} });
      await assert.rejects(
        client.get('x.bin', join(local.path, 'x.bin'), { compress: true }),
        isCode('INTEGRITY'),
      );
      assert.deepEqual(await treeOf(local.path), []);
      await client.close();
    } finally {
      await local.cleanup();
      await server.stop();
    }
  });
});
