import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Logger, silentLogger } from '../../src/log.js';
import { DATA_CHUNK_BYTES } from '../../src/protocol/files.js';
import { sha256File, startFiles, writeRandomFile } from '../files/fixtures.js';
import { closeTestBed, type ForwardTestBed, forwardTestBed, startForwarder } from '../forward/helpers.js';
import { runCli, TEST_TOKEN } from '../helpers.js';

/** The files service's line for a broken upload whose bytes it keeps (src/services/files/put.ts). */
const PARTIAL_KEPT = 'upload interrupted; partial kept for a resume';

/** A logger that records the `kept` size of every "partial kept" line and emits 'kept' for each. */
function keptLog(): { log: Logger; kept: number[]; events: EventEmitter } {
  const kept: number[] = [];
  const events = new EventEmitter();
  return {
    kept,
    events,
    log: {
      ...silentLogger,
      info(message, fields) {
        if (message !== PARTIAL_KEPT) return;
        kept.push(Number(fields?.kept));
        events.emit('kept');
      },
    },
  };
}

/** Resolves once `kept` holds `count` entries (the line may come before or after the CLI exits). */
function keptCount(record: ReturnType<typeof keptLog>, count: number): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (record.kept.length < count) return;
      record.events.off('kept', check);
      resolve();
    };
    record.events.on('kept', check);
    check();
  });
}

describe('sockit chaos and a resumed put', { timeout: 120_000 }, () => {
  let bed: ForwardTestBed;
  before(async () => {
    bed = await forwardTestBed('sockit-chaos-put-');
  });
  after(() => closeTestBed(bed));

  it('a resumed put through limit-data completes byte-exact', async () => {
    const record = keptLog();
    const files = await startFiles({ serve: { log: record.log } });
    // limit-data counts per connection, so every attempt gets 1.5 MB through: one whole 1 MiB
    // data frame (what the server keeps) and part of the next (dropped). The file needs five.
    const limit = 1_500_000;
    assert.ok(limit > DATA_CHUNK_BYTES && limit < 2 * DATA_CHUNK_BYTES);
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', files.address, '-t', `limit-data:up:${limit}`],
      bed.env,
    );
    try {
      const source = join(files.local, 'big.bin');
      await writeRandomFile(source, 4 * DATA_CHUNK_BYTES + 12_345);
      const args = ['put', '--quiet', '--resume', source, `127.0.0.1:${chaos.port}`, 'big.bin'];
      const failures: string[] = [];
      let done = false;
      for (let attempt = 1; attempt <= 10 && !done; attempt++) {
        const result = await runCli(args, { env: { ...bed.env, SOCKIT_TOKEN: TEST_TOKEN } });
        done = result.code === 0;
        if (done) break;
        failures.push(result.stderr.trim());
        // The server has written what it kept before the next attempt resumes from it.
        await keptCount(record, failures.length);
      }
      assert.ok(done, `no attempt of 10 completed: ${failures.join(' | ')}`);
      assert.ok(failures.length >= 2, `cut ${failures.length} times: the toxic did not cut the uploads`);
      // Each cut kept more than the one before: every attempt resumed where the last one stopped.
      assert.equal(record.kept.length, failures.length);
      for (const [i, size] of record.kept.entries()) {
        assert.ok(size > (record.kept[i - 1] ?? 0), `kept ${record.kept.join(', ')} bytes`);
      }
      assert.equal(await sha256File(join(files.root, 'big.bin')), await sha256File(source));
    } finally {
      await chaos.stop();
      await files.stop();
    }
  });
});
