import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { claimHeadroom, encodeFrame, FRAME_HEADROOM, FrameBatch } from '../../src/protocol/encoder.js';
import type { FrameHeader } from '../../src/protocol/frame.js';
import { upperAscii, upperAsciiInPlace } from '../../src/protocol/transform.js';

/**
 * Frames as the encoder wrote them before the shared slab and batches (one `Buffer.allocUnsafe`
 * per frame): header, body, id passed to encodeFrame, and the bytes in hex.
 */
const GOLDEN: [FrameHeader, string, number | undefined, string][] = [
  [{ type: 'echo' }, '', undefined, '0000000f7b2274797065223a226563686f227d'],
  [
    { type: 'echo', id: 7 },
    'same bytes',
    undefined,
    '000000207b2274797065223a226563686f222c226964223a372c2273697a65223a31307d73616d65206279746573',
  ],
  [
    { type: 'echo' },
    'hi',
    9007199254740991,
    '0000002e7b2274797065223a226563686f222c226964223a393030373139393235343734303939312c2273697a65223a327d6869',
  ],
  [{ type: 'pong', id: 3 }, '', undefined, '000000167b2274797065223a22706f6e67222c226964223a337d'],
  [
    { type: 'data', id: 12, size: 0 },
    '',
    undefined,
    '000000207b2274797065223a2264617461222c226964223a31322c2273697a65223a307d',
  ],
  [
    { type: 'exit', id: 4, code: 0, signal: null },
    '',
    undefined,
    '0000002d7b2274797065223a2265786974222c226964223a342c22636f6465223a302c227369676e616c223a6e756c6c7d',
  ],
  [
    { type: 'error', id: 5, code: 'BUSY', message: 'too many — ünïcode' },
    '',
    undefined,
    '000000487b2274797065223a226572726f72222c226964223a352c22636f6465223a2242555359222c226d657373616765223a22746f6f206d616e7920e2809420c3bc6ec3af636f6465227d',
  ],
  [
    { type: 'stdout', size: 99 },
    'abc',
    42,
    '000000227b2274797065223a227374646f7574222c226964223a34322c2273697a65223a337d616263',
  ],
  [
    { type: 'welcome', version: 1, services: ['echo', 'exec'] },
    '',
    undefined,
    '000000397b2274797065223a2277656c636f6d65222c2276657273696f6e223a312c227365727669636573223a5b226563686f222c2265786563225d7d',
  ],
];

const header = fc.oneof(
  fc.record({ type: fc.constantFrom('echo', 'data', 'stdout') }),
  fc.record({ type: fc.constant('exit'), code: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ type: fc.constant('error'), code: fc.constant('BUSY'), message: fc.string({ maxLength: 40 }) }),
);
/** Bodies around the size past which a body is passed on uncopied. */
const body = fc.oneof(
  fc.uint8Array({ maxLength: 100 }),
  fc.integer({ min: 4000, max: 4200 }).map((n) => new Uint8Array(n).fill(n & 0xff)),
);
const frame = fc.record({
  header,
  body,
  id: fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
});

function decodeAll(bytes: Buffer): { header: FrameHeader; body: Buffer }[] {
  const decoder = new FrameDecoder();
  decoder.push(bytes);
  const frames: { header: FrameHeader; body: Buffer }[] = [];
  for (let next = decoder.next(); next; next = decoder.next()) frames.push(next);
  return frames;
}

describe('encoder', () => {
  test('frames are byte for byte what the encoder wrote before batches and the slab', () => {
    for (const [header, body, id, hex] of GOLDEN) {
      assert.equal(Buffer.concat(encodeFrame(header, Buffer.from(body), id)).toString('hex'), hex);
    }
  });

  test('a batch is the concatenation of its frames, in order, and decodes back to them', () => {
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 40 }), (frames) => {
        const batch = new FrameBatch();
        for (const { header, body, id } of frames) batch.add(header, body, id);
        const expected = Buffer.concat(
          frames.flatMap(({ header, body, id }) => encodeFrame(header, body, id)),
        );
        assert.equal(batch.bytes, expected.length);
        const bytes = Buffer.concat(batch.take());
        assert.deepEqual(bytes, expected);
        const decoded = decodeAll(bytes);
        assert.equal(decoded.length, frames.length);
        decoded.forEach((got, i) => {
          const sent = frames[i]!;
          assert.equal(got.header.type, sent.header.type);
          assert.equal(got.header.id, sent.id);
          assert.deepEqual(new Uint8Array(got.body), sent.body);
        });
        assert.equal(batch.bytes, 0);
        assert.deepEqual(batch.take(), []);
      }),
      { numRuns: 200 },
    );
  });

  test('small frames share one buffer; a large body is passed on uncopied', () => {
    const batch = new FrameBatch();
    for (let id = 1; id <= 32; id++) batch.add({ type: 'echo' }, Buffer.alloc(64, 0x61), id);
    // One buffer, or two when the shared slab ran full on the way (3 KiB of a 16 KiB slab).
    assert.ok(batch.take().length <= 2);
    const big = Buffer.alloc(65536, 7);
    const view = new Uint8Array(big.buffer, big.byteOffset, 5000);
    batch.add({ type: 'data' }, big, 1);
    batch.add({ type: 'data' }, view, 2);
    batch.add({ type: 'end' }, undefined, 3);
    const parts = batch.take();
    assert.ok(parts.includes(big), 'the body itself, not a copy');
    const viewPart = parts.find((part) => part.length === 5000);
    assert.equal(viewPart?.buffer, big.buffer, 'a Uint8Array body: the same memory');
    assert.equal(viewPart.byteOffset, big.byteOffset);
    assert.ok(parts.length <= 6, `${parts.length} parts for three headers and two bodies`);
  });

  test('batches filled in turns keep their own frames, and handed-out bytes are never rewritten', () => {
    const a = new FrameBatch();
    const b = new FrameBatch();
    const first = encodeFrame({ type: 'echo', id: 1 }, Buffer.from('kept'))[0]!;
    const copy = Buffer.from(first);
    const expectedA: Buffer[] = [];
    const expectedB: Buffer[] = [];
    // Past several slabs (16 KiB each), with the two batches' frames interleaved in the slab.
    for (let i = 1; i <= 2000; i++) {
      const body = Buffer.alloc(i % 50, i & 0xff);
      a.add({ type: 'echo' }, body, i);
      b.add({ type: 'data' }, body, i);
      expectedA.push(...encodeFrame({ type: 'echo' }, body, i));
      expectedB.push(...encodeFrame({ type: 'data' }, body, i));
    }
    assert.deepEqual(Buffer.concat(a.take()), Buffer.concat(expectedA));
    assert.deepEqual(Buffer.concat(b.take()), Buffer.concat(expectedB));
    assert.deepEqual(first, copy);
  });

  test('a header over the ceiling throws TOO_LARGE and leaves the batch as it was', () => {
    const batch = new FrameBatch();
    batch.add({ type: 'echo' }, Buffer.from('x'), 1);
    const before = batch.bytes;
    assert.throws(() => batch.add({ type: 'error', message: 'm'.repeat(70_000) }), { code: 'TOO_LARGE' });
    assert.equal(batch.bytes, before);
    assert.deepEqual(
      Buffer.concat(batch.take()),
      Buffer.concat(encodeFrame({ type: 'echo' }, Buffer.from('x'), 1)),
    );
  });

  test('a large JSON header gets a buffer of its own, in order', () => {
    const batch = new FrameBatch();
    const long = { type: 'welcome', motd: 'w'.repeat(10_000) };
    batch.add({ type: 'echo' }, undefined, 1);
    batch.add(long);
    batch.add({ type: 'echo' }, undefined, 2);
    const parts = batch.take();
    assert.ok(parts.some((part) => part.length > 10_000));
    assert.deepEqual(
      decodeAll(Buffer.concat(parts)).map((f) => f.header.type),
      ['echo', 'welcome', 'echo'],
    );
  });

  test('a body edit changes the sent bytes, inline and large, and leaves the caller body as it was', () => {
    for (const length of [1, 63, 64, 4096, 4097, 70_000]) {
      const body = Buffer.alloc(length, 'aZ-q');
      const original = Buffer.from(body);
      const batch = new FrameBatch();
      batch.add({ type: 'echo' }, body, 3, upperAsciiInPlace);
      batch.add({ type: 'echo' }, body, 4);
      const frames = decodeAll(Buffer.concat(batch.take()));
      assert.deepEqual(frames[0]!.body, upperAscii(original), `${length} bytes, edited`);
      assert.deepEqual(frames[1]!.body, original, `${length} bytes, the next frame unedited`);
      assert.deepEqual(body, original, `${length} bytes: the caller's body is unchanged`);
    }
  });

  test('a frozen header sent again and again, and a plain one changed between sends, encode right', () => {
    const frozen = Object.freeze({ type: 'echo' });
    const plain: FrameHeader = { type: 'echo' };
    const batch = new FrameBatch();
    batch.add(frozen, Buffer.from('a'), 1);
    batch.add(plain, Buffer.from('b'), 2);
    batch.add(frozen, Buffer.from('c'), 3);
    plain.note = 'now a JSON header';
    batch.add(plain, Buffer.from('d'), 4);
    batch.add(Object.freeze({ type: 'pong' }), undefined, 5);
    batch.add(frozen, undefined, 6);
    const headers = decodeAll(Buffer.concat(batch.take())).map((frame) => frame.header);
    assert.deepEqual(headers, [
      { type: 'echo', id: 1, size: 1 },
      { type: 'echo', id: 2, size: 1 },
      { type: 'echo', id: 3, size: 1 },
      { type: 'echo', note: 'now a JSON header', id: 4, size: 1 },
      { type: 'pong', id: 5 },
      { type: 'echo', id: 6 },
    ]);
  });

  test('takeSingle gives a one-segment batch as one buffer, and leaves any other batch to take', () => {
    const batch = new FrameBatch();
    assert.equal(batch.takeSingle(), undefined, 'an empty batch');
    batch.add({ type: 'echo' }, Buffer.from('a'), 1);
    batch.add({ type: 'echo' }, Buffer.from('b'), 2);
    const single = batch.takeSingle();
    assert.deepEqual(
      single,
      Buffer.concat([
        ...encodeFrame({ type: 'echo' }, Buffer.from('a'), 1),
        ...encodeFrame({ type: 'echo' }, Buffer.from('b'), 2),
      ]),
    );
    assert.equal(batch.bytes, 0);
    assert.deepEqual(batch.take(), [], 'nothing is left behind');
    const large = Buffer.alloc(5000, 1);
    batch.add({ type: 'echo' }, large, 3);
    batch.add({ type: 'echo' }, Buffer.from('c'), 4);
    assert.equal(batch.takeSingle(), undefined, 'a large body makes several parts');
    const parts = batch.take();
    assert.equal(parts.length, 3);
    assert.deepEqual(
      decodeAll(Buffer.concat(parts)).map((frame) => frame.header.id),
      [3, 4],
    );
  });
});

describe('encoder headroom', () => {
  test('a body with claimed headroom leaves as one buffer, its header written in place, same bytes', () => {
    const memory = Buffer.allocUnsafeSlow(FRAME_HEADROOM + 65_536);
    const body = memory.subarray(FRAME_HEADROOM);
    for (let at = 0; at < body.length; at++) body[at] = (at * 13) & 0xff;
    const expected = Buffer.concat(encodeFrame({ type: 'tunnel-data' }, Buffer.from(body), 2 ** 40));
    const batch = new FrameBatch();
    batch.add({ type: 'tunnel-window', bytes: 5 }, undefined, 3);
    batch.add({ type: 'tunnel-data' }, claimHeadroom(body), 2 ** 40);
    const parts = batch.take();
    assert.equal(parts.length, 2, 'the small frame, then header + body together');
    assert.equal(parts[1]!.buffer, memory.buffer, 'the body was not copied');
    assert.deepEqual(parts[1], expected);
    const decoder = new FrameDecoder();
    decoder.push(Buffer.concat(parts));
    assert.equal(decoder.next()?.header.type, 'tunnel-window');
    assert.deepEqual(decoder.next()?.body, Buffer.from(body));
  });

  test('without a claim, or with a header too long for the headroom, the body is passed on beside its header', () => {
    const body = Buffer.allocUnsafeSlow(FRAME_HEADROOM + 8192)
      .subarray(FRAME_HEADROOM)
      .fill(7);
    const plain = new FrameBatch();
    plain.add({ type: 'tunnel-data' }, body, 9);
    assert.equal(plain.take().length, 2);
    const long = new FrameBatch();
    const type = `t${'x'.repeat(63)}`;
    long.add({ type }, claimHeadroom(body), 9);
    const parts = long.take();
    assert.equal(parts.length, 2, 'a 64-character type does not fit: header and body apart');
    assert.deepEqual(Buffer.concat(parts), Buffer.concat(encodeFrame({ type }, body, 9)));
  });

  test('a body with claimed headroom and an edit is sent edited, its own bytes untouched', () => {
    const body = Buffer.allocUnsafeSlow(FRAME_HEADROOM + 8192)
      .subarray(FRAME_HEADROOM)
      .fill(0x61);
    const batch = new FrameBatch();
    batch.add({ type: 'tunnel-data' }, claimHeadroom(body), 9, (out, start, end) =>
      out.fill(0x41, start, end),
    );
    const decoder = new FrameDecoder();
    decoder.push(Buffer.concat(batch.take()));
    assert.deepEqual(decoder.next()?.body, Buffer.alloc(8192, 0x41));
    assert.deepEqual(body, Buffer.alloc(8192, 0x61), 'the caller keeps its bytes');
  });
  test('a reply header without an id gets id and size appended: the bytes of the copy it replaces', () => {
    const cases: [FrameHeader, number, Buffer][] = [
      [{ type: 'started', pid: 4242, timeoutMs: 3600000 }, 7, Buffer.alloc(0)],
      [
        { type: 'exit', code: 0, signal: null, timedOut: false, truncated: false, durationMs: 1 },
        9,
        Buffer.alloc(0),
      ],
      [{ type: 'stdout', note: 'x' }, 11, Buffer.from('hi')],
      // An `id` key present but undefined keeps its place, as the copy keeps it: the copy is taken.
      [{ type: 'exit', id: undefined, code: 1 }, 12, Buffer.alloc(0)],
    ];
    for (const [header, id, body] of cases) {
      const json = JSON.stringify({ ...header, id, size: body.length > 0 ? body.length : undefined });
      const expected = Buffer.alloc(4 + Buffer.byteLength(json));
      expected.writeUInt32BE(Buffer.byteLength(json), 0);
      expected.write(json, 4);
      assert.deepEqual(Buffer.concat(encodeFrame(header, body, id)), Buffer.concat([expected, body]), json);
    }
  });
});
