import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createReporter, formatBytes } from '../../src/cli/progress.js';
import type { TransferResult } from '../../src/client/files.js';

/** A stream that records what is written; `isTTY` makes it look like a terminal. */
function sink(isTTY: boolean): Writable & { text: string; isTTY: boolean; columns: number } {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      stream.text += String(chunk);
      done();
    },
  }) as Writable & { text: string; isTTY: boolean; columns: number };
  stream.text = '';
  stream.isTTY = isTTY;
  stream.columns = 160;
  return stream;
}

const item = { localPath: 'a.bin', remotePath: 'dir/a.bin', size: 2048 };
const result: TransferResult = {
  remotePath: 'dir/a.bin',
  localPath: 'a.bin',
  size: 2048,
  checksum: 'sha256',
  digest: 'ab'.repeat(32),
  resumedFrom: 0,
  skipped: false,
  wireBytes: 2048,
};

function drive(reporter: ReturnType<typeof createReporter>): void {
  reporter.start(1, 2048);
  reporter.fileStart(item, 0, 1);
  reporter.progress(item, 1024, 1024);
  reporter.progress(item, 2048, 2048);
  reporter.fileDone(item, result);
  reporter.finish(true);
}

test('a terminal gets a bar with bytes, rate, ETA and the file count', () => {
  const terminal = sink(true);
  const out = sink(false);
  drive(createReporter({ verb: 'put', out, terminal: terminal as unknown as NodeJS.WriteStream }));
  assert.match(
    terminal.text,
    /put .*100% \| 2\.00 KiB \/ 2\.00 KiB \| .*\/s \| ETA .* \| file 1\/1 dir\/a\.bin/,
  );
  assert.match(out.text, /^put: 1 file, 2\.00 KiB in .* s, SHA-256 verified\n$/);
});

test('a pipe gets one line per file and no bar', () => {
  const terminal = sink(false);
  const out = sink(false);
  drive(createReporter({ verb: 'get', out, terminal: terminal as unknown as NodeJS.WriteStream }));
  assert.equal(terminal.text, '');
  assert.equal(out.text, `get dir/a.bin -> a.bin (2.00 KiB) sha256 ${'ab'.repeat(32)}\n`);
});

test('--json gives start, file, progress, done and end events; --quiet gives nothing', () => {
  const out = sink(false);
  drive(createReporter({ verb: 'put', json: true, out }));
  const kinds = out.text
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { event: string }).event);
  assert.deepEqual(kinds.slice(0, 2), ['start', 'file']);
  assert.ok(kinds.includes('progress'));
  assert.deepEqual(kinds.slice(-2), ['done', 'end']);
  const quiet = sink(false);
  const terminal = sink(true);
  drive(
    createReporter({
      verb: 'put',
      quiet: true,
      out: quiet,
      terminal: terminal as unknown as NodeJS.WriteStream,
    }),
  );
  assert.equal(quiet.text + terminal.text, '');
});

test('formatBytes uses binary units', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(1024 ** 3), '1.00 GiB');
  assert.equal(formatBytes(150 * 1024 ** 2), '150.0 MiB');
});
