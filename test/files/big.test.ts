import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sha256File, startFiles, writeRandomFile } from './fixtures.js';

const GiB = 1024 ** 3;

test('a 1 GiB file of random bytes round-trips with matching SHA-256, memory flat', async (t) => {
  // tmpfs keeps the disk out of it; the test is about streaming and verification.
  const files = await startFiles({ baseDir: existsSync('/dev/shm') ? '/dev/shm' : tmpdir() });
  try {
    const client = await files.connect();
    const source = join(files.local, 'one-gib.bin');
    const sha = await writeRandomFile(source, GiB);
    const put = await client.put(source, 'big/one-gib.bin');
    assert.equal(put.sha256, sha);
    assert.equal((await stat(join(files.root, 'big', 'one-gib.bin'))).size, GiB);
    const back = join(files.local, 'one-gib.back');
    const get = await client.get('big/one-gib.bin', back);
    assert.equal(get.sha256, sha);
    assert.equal(await sha256File(back), sha);
    // Server and client share this process: whole-file buffering would need gigabytes.
    const peakMiB = process.resourceUsage().maxRSS / 1024;
    t.diagnostic(`peak RSS of the process holding both sides: ${peakMiB.toFixed(0)} MiB`);
    assert.ok(peakMiB < 400, `peak RSS ${peakMiB.toFixed(0)} MiB`);
  } finally {
    await files.stop();
  }
});
