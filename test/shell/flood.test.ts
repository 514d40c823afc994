/**
 * A terminal whose command stops reading its input must stall that command alone: the server
 * (a child process here, so that a stuck server cannot hang the test) keeps answering everyone.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../src/client/client.js';
import { TEST_TOKEN, tempDir } from '../helpers.js';
import { type Running, sockit, waitForText } from '../raw/helpers.js';

describe('a terminal flooded with input', { timeout: 60_000 }, () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let server: Running;
  let address: string;

  before(async () => {
    state = await tempDir('sockit-pty-flood-');
    writeFileSync(join(state.path, 'token'), TEST_TOKEN, { mode: 0o600 });
    server = sockit(['serve', '--exec', '--allow-pty', '--state-dir', state.path, 'tcp://127.0.0.1:0'], {
      env: { SOCKIT_STATE_DIR: state.path, HOME: state.path },
      stdin: 'ignore',
    });
    address = (await waitForText(server, /^\s+(tcp:\/\/127\.0\.0\.1:\d+)$/m, 'stdout'))[1]!;
  });
  // In an after hook, so that a test that timed out (a stuck server) still stops it.
  after(async () => {
    server.child.kill('SIGKILL');
    await server.exited;
    await state.cleanup();
  });

  test('stalls only its command: the server still answers, then ends the command', async () => {
    const flooding = await connect(address, { token: TEST_TOKEN });
    const other = await connect(address, { token: TEST_TOKEN, requestTimeoutMs: 5000 });
    try {
      // sleep never reads: a few KiB fill the terminal's input queue, the rest waits in the server.
      const remote = flooding.spawn(['sleep', '60'], { pty: { term: 'dumb', rows: 24, cols: 80 } });
      remote.stdout.resume();
      await remote.started;
      const line = Buffer.from(`${'x'.repeat(63)}\n`);
      let written = 0;
      while (written < 1024 * 1024 && remote.stdin!.write(line)) written += line.length;
      // A server stuck in a write would never answer these.
      for (let i = 0; i < 3; i++) await other.ping();
      remote.cancel();
      await assert.rejects(remote.exited);
      await other.ping();
    } finally {
      await Promise.all([flooding.close({ deadlineMs: 0 }), other.close({ deadlineMs: 0 })]);
    }
  });
});
