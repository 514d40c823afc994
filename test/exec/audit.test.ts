import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Logger } from '../../src/log.js';
import { createAuditSink } from '../../src/services/exec/audit.js';
import { tempDir } from '../helpers.js';
import { startExec } from './helpers.js';

test('the audit file gets one JSON line per request: run, refused, failed, timed out', async () => {
  const dir = await tempDir('sockit-exec-audit-');
  const auditFile = join(dir.path, 'audit.jsonl');
  try {
    const env = await startExec({ auditFile, maxTimeoutMs: 500 });
    await env.client.exec(['sh', '-c', 'printf 12345; printf 67 >&2; exit 3'], {
      env: { SECRET: 'hunter2' },
    });
    await assert.rejects(env.client.exec({ shell: 'true' }), { code: 'FORBIDDEN' });
    await assert.rejects(env.client.exec(['sockit-no-such-program']), { code: 'NOT_FOUND' });
    await env.client.exec(['sleep', '30'], { input: 'abc' });
    // Malformed: the connection refuses it against the catalogue before exec sees it, and exec still audits it.
    await assert.rejects(env.client.call({ type: 'exec', argv: ['true'], timeoutMs: -1 }), {
      code: 'BAD_REQUEST',
    });
    await env.stop(); // closes the audit file

    assert.equal((await stat(auditFile)).mode & 0o777, 0o600);
    const text = await readFile(auditFile, 'utf8');
    assert.doesNotMatch(text, /hunter2/, 'environment values stay out of the audit log');
    const entries = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    assert.equal(entries.length, 5);
    for (const entry of entries) {
      assert.equal(entry.event, 'exec');
      assert.ok(!Number.isNaN(Date.parse(entry.time)));
      assert.match(entry.peer, /^127\.0\.0\.1:\d+$/);
      assert.equal(typeof entry.connection, 'number');
      assert.equal(typeof entry.id, 'number');
    }
    const [ran, refused, failed, timedOut, malformed] = entries;
    assert.deepEqual(ran.argv, ['sh', '-c', 'printf 12345; printf 67 >&2; exit 3']);
    assert.equal(ran.outcome, 'exit');
    assert.equal(ran.code, 3);
    assert.equal(ran.signal, null);
    assert.equal(ran.bytesOut, 7);
    assert.equal(ran.stdoutBytes, 5);
    assert.equal(ran.stderrBytes, 2);
    assert.deepEqual(ran.envNames, ['SECRET']);
    assert.equal(typeof ran.durationMs, 'number');
    assert.equal(typeof ran.pid, 'number');
    assert.equal(refused.outcome, 'refused');
    assert.equal(refused.shell, 'true');
    assert.equal(refused.error, 'FORBIDDEN');
    assert.equal(failed.outcome, 'failed');
    assert.equal(failed.error, 'NOT_FOUND');
    assert.equal(timedOut.timedOut, true);
    assert.equal(timedOut.signal, 'SIGKILL');
    assert.equal(timedOut.killedBy, 'timeout');
    assert.equal(timedOut.stdinBytes, 3);
    assert.equal(malformed.outcome, 'refused');
    assert.equal(malformed.error, 'BAD_REQUEST');
  } finally {
    await dir.cleanup();
  }
});

test('a request refused for too many open on its connection (BUSY) is audited too', async () => {
  const entries: Record<string, unknown>[] = [];
  const record = (_message: string, fields?: Record<string, unknown>) => entries.push(fields ?? {});
  const audit: Logger = { debug: record, info: record, warn: record, error: record };
  const env = await startExec({ audit }, { limits: { maxOpenRequests: 1 } });
  try {
    const running = env.client.spawn(['cat']);
    await running.started;
    await assert.rejects(env.client.exec(['true']), { code: 'BUSY' });
    running.stdin!.end();
    assert.equal((await running.exited).code, 0);
  } finally {
    await env.stop();
  }
  assert.deepEqual(
    entries.map((entry) => [entry.outcome, entry.error]),
    [
      ['refused', 'BUSY'],
      ['exit', undefined],
    ],
  );
});

test('audit entries can go to a Logger instead', async () => {
  const entries: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  const record = (message: string, fields?: Record<string, unknown>) => entries.push({ message, fields });
  const audit: Logger = { debug: record, info: record, warn: record, error: record };
  const env = await startExec({ audit });
  await env.client.exec(['echo', 'hi']);
  await env.stop();
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.message, 'exec');
  assert.deepEqual(entries[0]!.fields!.argv, ['echo', 'hi']);
  assert.equal(entries[0]!.fields!.code, 0);
  assert.equal(entries[0]!.fields!.bytesOut, 3);
});

test('the audit file is written with backpressure: a bounded queue, drops counted and recorded', async () => {
  const dir = await tempDir('sockit-exec-audit-');
  const fifo = join(dir.path, 'audit.fifo');
  execFileSync('mkfifo', [fifo]);
  // A FIFO's two opens wait for each other: the reader's on the thread pool, the sink's here.
  // Nothing is read until the queue is full: the pipe (64 KiB) fills, then the stream, then the queue.
  const opening = open(fifo, 'r');
  const maxQueuedBytes = 32 * 1024;
  const sink = createAuditSink({ file: fifo, maxQueuedBytes });
  const reader = await opening;
  try {
    const entry = (id: number) => ({
      peer: '127.0.0.1:1',
      connection: 1,
      id,
      outcome: 'exit' as const,
      argv: ['echo', 'x'.repeat(200)],
    });
    const total = 3000; // ~750 KB of lines: far more than the pipe, the stream and the queue hold
    for (let id = 1; id <= total; id++) {
      sink.record(entry(id));
      assert.ok(sink.backlog.queuedBytes <= maxQueuedBytes, `queue at ${sink.backlog.queuedBytes} bytes`);
    }
    const dropped = sink.backlog.dropped;
    assert.ok(dropped > 0, 'a full queue drops (and counts) entries');
    let readyResolved = false;
    const ready = sink.ready().then(() => {
      readyResolved = true;
    });
    assert.equal(readyResolved, false, 'ready() waits while the file is behind');

    // Now read everything: the queue drains, the drop count is written, close() ends the file.
    const lines: string[] = [];
    let partial = '';
    const reading = (async () => {
      const stream = createReadStream('', { fd: reader.fd, autoClose: false });
      for await (const chunk of stream) {
        const text = partial + chunk.toString();
        const parts = text.split('\n');
        partial = parts.pop()!;
        lines.push(...parts);
      }
    })();
    await ready;
    await sink.close();
    await reading;
    const records = lines.map((line) => JSON.parse(line));
    const exec = records.filter((record) => record.event === 'exec');
    const drops = records.filter((record) => record.event === 'audit-dropped');
    assert.equal(drops.length, 1);
    assert.equal(drops[0].dropped, dropped);
    assert.equal(exec.length + dropped, total, 'every entry is written or counted as dropped');
    // What was written is in order and whole: the first ones, then the ones after the gap.
    const ids = exec.map((record) => record.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.equal(ids[0], 1);
  } finally {
    await reader.close().catch(() => {});
    await dir.cleanup();
  }
});
