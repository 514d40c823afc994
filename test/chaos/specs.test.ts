import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_TOXIC_MS, parseToxicSpec, ToxicSet } from '../../src/raw/chaos/index.js';
import { closeTestBed, type ForwardTestBed, forwardTestBed } from '../forward/helpers.js';
import { runCli } from '../helpers.js';

describe('toxic specs', () => {
  it('parses the flag syntax and fills in defaults', () => {
    const set = new ToxicSet(false);
    const latency = set.add(parseToxicSpec('latency:down:200ms:jitter=50ms'));
    assert.deepEqual(
      { ...latency, id: 0 },
      {
        id: 0,
        name: 'latency_down',
        type: 'latency',
        stream: 'down',
        toxicity: 1,
        attributes: { latency: 200, jitter: 50 },
      },
    );
    assert.deepEqual(set.add(parseToxicSpec('bandwidth:up:100KB/s:p=50%')).attributes, { rate: 100_000 });
    assert.deepEqual(set.add(parseToxicSpec('slicer:16:variation=4:delay=1ms:name=s')).attributes, {
      size: 16,
      variation: 4,
      delay: 1,
    });
    assert.equal(set.list().length, 3);
    assert.throws(() => set.add(parseToxicSpec('latency:down:1s')), /a toxic named "latency_down" exists/);
    assert.throws(() => parseToxicSpec('teleport:up'), /unknown type "teleport"/);
    assert.throws(() => parseToxicSpec('latency:soon'), /"soon" is not a time/);
    assert.throws(() => set.add(parseToxicSpec('loss:up:10%')), /loss acts on datagrams/);
    assert.throws(() => new ToxicSet(true).add(parseToxicSpec('slicer:8')), /slicer acts on streams/);
  });

  it('takes a bare N% as the toxicity on every type, p=N% too', () => {
    const set = new ToxicSet(true);
    // The form chaos --help and docs/forward.md show.
    const reorder = set.add(parseToxicSpec('reorder:up:20%:delay=20ms'));
    assert.equal(reorder.toxicity, 0.2);
    assert.deepEqual(reorder.attributes, { delay: 20 });
    const latency = set.add(parseToxicSpec('latency:down:30%:100ms'));
    assert.equal(latency.toxicity, 0.3);
    assert.deepEqual(latency.attributes, { latency: 100, jitter: 0 });
    assert.equal(set.add(parseToxicSpec('bandwidth:up:10KB:p=40%')).toxicity, 0.4);
    assert.equal(set.add(parseToxicSpec('loss:up:0.25')).toxicity, 0.25);
    assert.equal(parseToxicSpec('limit-data:down:3:50%').toxicity, 0.5);
    assert.deepEqual(parseToxicSpec('limit-data:down:3:50%').attributes, { bytes: 3 });
    assert.throws(() => parseToxicSpec('latency:down:120%'), /probability "120%" is not 0-1 or 0-100%/);
  });

  it('holds back half the datagrams for a reorder without a probability', () => {
    const set = new ToxicSet(true);
    assert.equal(set.add(parseToxicSpec('reorder:up')).toxicity, 0.5);
    assert.deepEqual(set.list()[0]!.attributes, { delay: 20 });
    // The same default through the control API's JSON form; an explicit 1 stays 1.
    assert.equal(set.add({ type: 'reorder', stream: 'down' }).toxicity, 0.5);
    assert.equal(set.add({ type: 'reorder', name: 'all', toxicity: 1 }).toxicity, 1);
    assert.equal(set.add({ type: 'loss', stream: 'down' }).toxicity, 1);
  });

  it('refuses a time longer than a Node timer holds, by flag and as JSON', () => {
    const set = new ToxicSet(false);
    assert.equal(MAX_TOXIC_MS, 2 ** 31 - 1);
    for (const spec of ['timeout:both:600h', 'latency:down:99999999999s', 'slicer:8:delay=600h']) {
      assert.throws(
        () => set.add(parseToxicSpec(spec)),
        (error: Error & { code?: string }) => error.code === 'USAGE',
        spec,
      );
    }
    assert.throws(
      () => parseToxicSpec('timeout:both:600h'),
      /"600h" is over the longest wait, 2147483647 ms/,
    );
    assert.throws(
      () => set.add({ type: 'reset-peer', attributes: { timeout: MAX_TOXIC_MS + 1 } }),
      /timeout is over the longest wait, 2147483647 ms/,
    );
    assert.throws(
      () => set.add({ type: 'latency', attributes: { latency: MAX_TOXIC_MS, jitter: 1 } }),
      /latency \+ jitter is over the longest wait, 2147483647 ms/,
    );
    // The longest wait itself is allowed.
    assert.equal(
      set.add({ type: 'timeout', attributes: { timeout: MAX_TOXIC_MS } }).attributes.timeout,
      MAX_TOXIC_MS,
    );
  });
});

describe('sockit chaos -t', { timeout: 60_000 }, () => {
  let bed: ForwardTestBed;
  before(async () => {
    bed = await forwardTestBed('sockit-chaos-specs-');
  });
  after(() => closeTestBed(bed));

  it('refuses a too long timeout with one usage line and exit 2', async () => {
    const result = await runCli(
      ['chaos', '127.0.0.1:0', `127.0.0.1:${bed.echo.port}`, '-t', 'timeout:both:600h'],
      {
        env: bed.env,
      },
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^sockit: USAGE: toxic "timeout:both:600h": "600h" is over the longest wait, 2147483647 ms \(24\.8 days\)/,
    );
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
  });
});
