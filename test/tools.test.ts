/** requireTool: a missing peer skips locally, with the reason, and fails the run under CI=true. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixture, runTestFile } from './helpers.js';
import { which } from './tools.js';

test('a missing peer tool skips the test locally, saying how to install it', async () => {
  const run = await runTestFile(fixture('needs-a-missing-tool.fixture.js'), { CI: '' });
  assert.equal(run.code, 0, run.output);
  assert.match(run.output, /# SKIP sockit-no-such-peer-tool is not installed \(apt-get install/);
});

test('under CI=true a missing peer tool fails the run', async () => {
  const run = await runTestFile(fixture('needs-a-missing-tool.fixture.js'), { CI: 'true' });
  assert.notEqual(run.code, 0, run.output);
  assert.match(
    run.output,
    /sockit-no-such-peer-tool is not installed.*under CI=true every peer tool is required/,
  );
});

test('which finds programs on PATH, and not those that are nowhere', () => {
  assert.match(which('sh') ?? '', /^\/.*\/sh$/);
  assert.equal(which('sockit-no-such-peer-tool'), undefined);
});
