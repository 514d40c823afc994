import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checksumFile, sha256File, startFiles, writeRandomFile } from './fixtures.js';

const MiB = 1024 ** 2;
/** Big enough that holding the file (once per side) would dwarf the bound below. */
const SIZE = 256 * MiB;
/** The test holds three copies at once: the source, the uploaded file, the downloaded one. */
const NEEDED = 3 * SIZE + 64 * MiB;
/** Growth of peak RSS allowed over the transfer: streaming holds chunks, not the file. */
const RSS_GROWTH_LIMIT = 96 * MiB;

/** Where three copies fit: tmpfs first (the test is about streaming, not the disk), else TMPDIR. */
async function roomFor(bytes: number): Promise<string | undefined> {
  for (const dir of ['/dev/shm', tmpdir()]) {
    if (!existsSync(dir)) continue;
    const fs = await statfs(dir);
    if (fs.bavail * fs.bsize >= bytes) return dir;
  }
  return undefined;
}

test('a 256 MiB file of random bytes round-trips with matching SHA-256, memory flat', async (t) => {
  const baseDir = await roomFor(NEEDED);
  if (!baseDir) {
    t.skip(`needs ${NEEDED / MiB} MiB free in /dev/shm or ${tmpdir()}`);
    return;
  }
  const files = await startFiles({ baseDir });
  try {
    const client = await files.connect();
    const source = join(files.local, 'big.bin');
    const sha = await writeRandomFile(source, SIZE);
    // Server and client share this process: what either buffers shows in its peak RSS.
    const before = process.memoryUsage().rss;
    const put = await client.put(source, 'big/big.bin');
    assert.equal(put.digest, await checksumFile(put.localPath, put.checksum));
    assert.equal((await stat(join(files.root, 'big', 'big.bin'))).size, SIZE);
    const back = join(files.local, 'big.back');
    const get = await client.get('big/big.bin', back);
    assert.equal(get.digest, await checksumFile(get.localPath, get.checksum));
    assert.equal(await sha256File(back), sha);
    const peak = process.resourceUsage().maxRSS * 1024;
    const growth = Math.max(0, peak - before);
    t.diagnostic(`RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB`);
    assert.ok(
      growth < RSS_GROWTH_LIMIT,
      `peak RSS grew ${(growth / MiB).toFixed(0)} MiB moving ${SIZE / MiB} MiB each way`,
    );
  } finally {
    await files.stop();
  }
});
