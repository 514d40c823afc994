import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describeOverTransports, tempDir } from '../helpers.js';
import { nodeArgv, startExec } from './helpers.js';

const MB = 1024 * 1024;

/** Writes `count` 32-bit big-endian counters: any loss, duplicate or reordering shows. */
const COUNTER_SCRIPT = `
const total = Number(process.argv[1]);
const words = 16384;
let next = 0;
function write() {
  while (next < total) {
    const n = Math.min(words, total - next);
    const chunk = Buffer.allocUnsafe(n * 4);
    for (let i = 0; i < n; i++) chunk.writeUInt32BE(next + i, i * 4);
    next += n;
    if (!process.stdout.write(chunk)) return process.stdout.once('drain', write);
  }
}
write();
`;

/** Checks the counters as they arrive, across chunk boundaries, without keeping 50 MB. */
class CounterCheck extends Writable {
  expected = 0;
  bytes = 0;
  #carry = Buffer.alloc(0);

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error) => void): void {
    this.bytes += chunk.length;
    const data = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    const whole = data.length - (data.length % 4);
    for (let offset = 0; offset < whole; offset += 4) {
      const value = data.readUInt32BE(offset);
      if (value !== this.expected) {
        callback(
          new Error(`at byte ${this.bytes - chunk.length + offset}: got ${value}, expected ${this.expected}`),
        );
        return;
      }
      this.expected++;
    }
    this.#carry = Buffer.from(data.subarray(whole));
    callback();
  }
}

describeOverTransports('exec: streams', (transport) => {
  let env: Awaited<ReturnType<typeof startExec>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    env = await startExec({}, { transport });
    dir = await tempDir('sockit-exec-streams-');
  });
  after(async () => {
    await env?.stop();
    await dir?.cleanup();
  });

  test('50 MB of output arrives intact and in order', async () => {
    const words = (50 * MB) / 4;
    const remote = env.client.spawn(nodeArgv(COUNTER_SCRIPT, String(words)), { stdin: false });
    const check = new CounterCheck();
    remote.stderr.resume();
    await Promise.all([pipeline(remote.stdout, check), remote.exited]);
    assert.equal(check.bytes, 50 * MB);
    assert.equal(check.expected, words);
    assert.equal((await remote.exited).code, 0);
  });

  test('a slow reader slows the command down and still gets every byte in order', async () => {
    const words = (4 * MB) / 4;
    const remote = env.client.spawn(nodeArgv(COUNTER_SCRIPT, String(words)), { stdin: false });
    const check = new CounterCheck();
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, encoding, callback) {
        // Yield to the event loop on every chunk, so the stream buffers fill and backpressure engages.
        nextTurn().then(() => check._write(chunk, encoding, callback));
      },
    });
    remote.stderr.resume();
    await Promise.all([pipeline(remote.stdout, slow), remote.exited]);
    assert.equal(check.expected, words);
  });

  test('binary output is byte-exact', async () => {
    const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(3 * MB)]);
    const file = join(dir.path, 'blob.bin');
    await writeFile(file, bytes);
    const result = await env.client.exec(['cat', file]);
    assert.equal(result.stdout.length, bytes.length);
    assert.ok(result.stdout.equals(bytes), 'bytes differ');
  });

  test('stdin piped through wc -c', async () => {
    const input = randomBytes(MB + 17);
    const result = await env.client.exec(['wc', '-c'], { input });
    assert.equal(result.stdout.toString().trim(), String(MB + 17));
    const empty = await env.client.exec(['wc', '-c'], { input: '' });
    assert.equal(empty.stdout.toString().trim(), '0');
  });

  test('without stdin a command reads end-of-file at once', async () => {
    const result = await env.client.exec(['wc', '-c']);
    assert.equal(result.stdout.toString().trim(), '0');
  });

  test('large stdin through cat comes back byte-exact (backpressure both ways)', async () => {
    const input = randomBytes(20 * MB);
    const remote = env.client.spawn(['cat']);
    const hash = createHash('sha256');
    let received = 0;
    remote.stdout.on('data', (chunk: Buffer) => {
      received += chunk.length;
      hash.update(chunk);
    });
    await pipeline(Readable.from(chunks(input, 100_000)), remote.stdin!);
    const exit = await remote.exited;
    assert.equal(exit.code, 0);
    assert.equal(received, input.length);
    assert.equal(hash.digest('hex'), createHash('sha256').update(input).digest('hex'));
  });

  test('stdin from an async iterable', async () => {
    async function* lines() {
      for (let i = 0; i < 1000; i++) yield `line ${i}\n`;
    }
    const result = await env.client.exec(['wc', '-l'], { input: lines() });
    assert.equal(result.stdout.toString().trim(), '1000');
  });

  test('stdin after the command stopped reading is dropped quietly', async () => {
    const remote = env.client.spawn(['head', '-c', '5']);
    const out: Buffer[] = [];
    remote.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    await pipeline(Readable.from(chunks(randomBytes(4 * MB), 65536)), remote.stdin!);
    assert.equal((await remote.exited).code, 0);
    assert.equal(Buffer.concat(out).length, 5);
  });

  test('maxBuffer on the client stops a command that says too much', async () => {
    await assert.rejects(env.client.exec(['yes'], { maxBuffer: 100_000 }), { code: 'TOO_LARGE' });
    assert.equal((await env.client.exec(['true'])).code, 0);
  });
});

function* chunks(buffer: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < buffer.length; offset += size) yield buffer.subarray(offset, offset + size);
}
