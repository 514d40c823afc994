import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import xxhash from 'xxhash-wasm';
import { createChecksum, xxh64Implementation } from '../../src/storage/checksum.js';

test('xxh64 is the native addon here (npm install builds it on Linux)', () => {
  assert.equal(xxh64Implementation(), 'native');
});

test('native xxh64 gives xxhash-wasm digests, whatever the lengths and splits', async () => {
  const wasm = await xxhash();
  for (const length of [0, 1, 3, 4, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 4096, 100_003, 1 << 20]) {
    const data = randomBytes(length);
    const expected = wasm.create64().update(data).digest().toString(16).padStart(16, '0');
    for (const split of [1, 5, 32, 4096, length || 1]) {
      const checksum = await createChecksum('xxh64');
      for (let at = 0; at < length; at += split) checksum.update(data.subarray(at, at + split));
      assert.equal(checksum.digest(), expected, `${length} bytes fed ${split} at a time`);
    }
    // The digest does not end the hash: more may follow (a resumed prefix is checked so).
    const running = await createChecksum('xxh64');
    running.update(data.subarray(0, length >> 1));
    running.digest();
    running.update(data.subarray(length >> 1));
    assert.equal(running.digest(), expected);
  }
});

test('SOCKIT_NO_NATIVE=1 falls back to xxhash-wasm with the same digest', async () => {
  const module = new URL('../../src/storage/checksum.js', import.meta.url).href;
  const script = [
    `import(${JSON.stringify(module)}).then(async (m) => {`,
    "  const c = await m.createChecksum('xxh64'); c.update(Buffer.from('sockit'));",
    '  console.log(m.xxh64Implementation(), c.digest());',
    '})',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, SOCKIT_NO_NATIVE: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0);
  const native = await createChecksum('xxh64');
  native.update(Buffer.from('sockit'));
  assert.equal(out.trim(), `wasm ${native.digest()}`);
});
