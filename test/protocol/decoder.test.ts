import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FrameDecoder, FrameError } from '../../src/protocol/decoder.js';
import {
  bodyParts,
  encodeFrame,
  encodeFrameToBuffer,
  type Frame,
  type FrameHeader,
  MAX_HEADER_BYTES,
  SPLIT_BODY_MIN_BYTES,
} from '../../src/protocol/frame.js';

/** Feeds `chunks` to a fresh decoder and collects every frame, copying bodies out. */
function decodeAll(chunks: Buffer[], decoder = new FrameDecoder()): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let frame = decoder.next(); frame; frame = decoder.next()) {
      frames.push({ header: frame.header, body: Buffer.from(frame.body) });
    }
  }
  return frames;
}

function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

/** A length prefix followed by raw header bytes, to build malformed frames. */
function rawFrame(headerText: string | Buffer, body = Buffer.alloc(0)): Buffer {
  const header = typeof headerText === 'string' ? Buffer.from(headerText) : headerText;
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(header.length);
  return Buffer.concat([prefix, header, body]);
}

function expectFrameError(
  bytes: Buffer,
  code: 'FRAME_INVALID' | 'TOO_LARGE',
  pattern: RegExp,
  decoder?: FrameDecoder,
) {
  assert.throws(
    () => decodeAll([bytes], decoder),
    (error: unknown) => {
      assert.ok(error instanceof FrameError, 'a FrameError');
      assert.equal(error.code, code);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

const sample: [FrameHeader, Buffer][] = [
  [{ type: 'hello', version: 1, client: 'sockit/0.1.0' }, Buffer.alloc(0)],
  [{ type: 'echo', id: 1 }, Buffer.from('hello world')],
  [{ type: 'data', id: 2, note: 'ünïcödé ✓' }, randomBytes(10_000)],
  [{ type: 'stdout', id: 9007199254740991 }, Buffer.from([0, 255, 10, 13])],
];
const stream = Buffer.concat(sample.map(([header, body]) => encodeFrameToBuffer(header, body)));

describe('FrameDecoder', () => {
  test('decodes frames fed in one chunk', () => {
    const frames = decodeAll([stream]);
    assert.equal(frames.length, sample.length);
    frames.forEach((frame, i) => {
      assert.deepEqual(frame.body, sample[i]![1]);
      assert.equal(frame.header.type, sample[i]![0].type);
      assert.equal(frame.header.size ?? 0, sample[i]![1].length);
    });
  });

  test('one byte at a time gives the same frames', () => {
    const chunks = [...stream].map((byte) => Buffer.from([byte]));
    assert.deepEqual(decodeAll(chunks), decodeAll([stream]));
  });

  test('random splits give the same frames (property)', () => {
    const whole = decodeAll([stream]);
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 40 }), (cuts) => {
        assert.deepEqual(decodeAll(splitAt(stream, cuts)), whole);
      }),
      { numRuns: 300 },
    );
  });

  test('any header and body round-trip through any split (property)', () => {
    const headerArb = fc.record({
      type: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
      id: fc.option(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
      text: fc.string({ unit: 'grapheme', maxLength: 40 }),
    });
    const frameArb = fc.tuple(headerArb, fc.uint8Array({ maxLength: 3000 }));
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (frames, cuts) => {
          const headers = frames.map(([header]) => {
            const clean: FrameHeader = { type: header.type, text: header.text };
            if (header.id !== undefined) clean.id = header.id;
            return clean;
          });
          const bytes = Buffer.concat(frames.map(([, body], i) => encodeFrameToBuffer(headers[i]!, body)));
          const decoded = decodeAll(
            splitAt(
              bytes,
              cuts.map((cut) => cut % (bytes.length + 1)),
            ),
          );
          assert.equal(decoded.length, frames.length);
          decoded.forEach((frame, i) => {
            assert.equal(frame.header.type, headers[i]!.type);
            assert.equal(frame.header.id, headers[i]!.id);
            assert.equal(frame.header.text, headers[i]!.text);
            assert.deepEqual(new Uint8Array(frame.body), frames[i]![1]);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a 16 MiB body round-trips', () => {
    const body = randomBytes(16 * 1024 * 1024);
    const parts = encodeFrame({ type: 'data', id: 1 }, body);
    assert.equal(parts.length, 2, 'large bodies are not copied behind the header');
    assert.equal(parts[1], body);
    const frames = decodeAll(splitAt(Buffer.concat(parts), [3, 100, 1_000_000, 9_999_999]));
    assert.equal(frames.length, 1);
    assert.ok(frames[0]!.body.equals(body));
  });

  test('a 0-byte body round-trips with size absent or 0', () => {
    const frames = decodeAll([
      encodeFrameToBuffer({ type: 'ping', id: 3 }),
      rawFrame('{"type":"x","size":0}'),
    ]);
    assert.equal(frames.length, 2);
    assert.equal(frames[0]!.body.length, 0);
    assert.equal(frames[1]!.body.length, 0);
  });

  test('a frame inside one chunk is handed out as a view, not a copy', () => {
    const decoder = new FrameDecoder();
    const bytes = encodeFrameToBuffer({ type: 'data', id: 1 }, Buffer.from('abcdef'));
    decoder.push(bytes);
    const frame = decoder.next()!;
    assert.equal(frame.body.buffer, bytes.buffer);
  });

  test('a large body across chunks comes as its pieces, uncopied; body joins them on demand', () => {
    const big = randomBytes(SPLIT_BODY_MIN_BYTES + 12_345);
    const small = randomBytes(SPLIT_BODY_MIN_BYTES - 1);
    const bytes = Buffer.concat([
      encodeFrameToBuffer({ type: 'data', id: 1 }, big),
      encodeFrameToBuffer({ type: 'data', id: 1 }, small),
      encodeFrameToBuffer({ type: 'data', id: 1 }, big),
    ]);
    fc.assert(
      fc.property(fc.array(fc.nat(bytes.length), { minLength: 1, maxLength: 40 }), (cuts) => {
        const chunks = splitAt(bytes, cuts);
        const decoder = new FrameDecoder();
        const frames: Frame[] = [];
        for (const chunk of chunks) {
          decoder.push(chunk);
          for (let frame = decoder.next(); frame; frame = decoder.next()) frames.push(frame);
        }
        assert.equal(frames.length, 3);
        for (const [index, expected] of [big, small, big].entries()) {
          const frame = frames[index]!;
          if (frame.parts) {
            assert.ok(expected.length >= SPLIT_BODY_MIN_BYTES, 'only large bodies are split');
            assert.ok(frame.parts.length > 1);
            for (const part of frame.parts) {
              assert.ok(
                chunks.some((chunk) => chunk.buffer === part.buffer),
                'a view, not a copy',
              );
            }
            assert.deepEqual(Buffer.concat(frame.parts), expected);
          }
          assert.deepEqual(frame.body, expected);
          assert.deepEqual(Buffer.concat([...bodyParts(frame)]), expected);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('reports how much is buffered and whether it is between frames', () => {
    const decoder = new FrameDecoder();
    assert.equal(decoder.idle, true);
    decoder.push(stream.subarray(0, 10));
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.idle, false);
  });
});

describe('FrameDecoder rejects every malformed input class', () => {
  test('header length below 2', () => {
    expectFrameError(rawFrame('{'), 'FRAME_INVALID', /below the minimum/);
    expectFrameError(Buffer.from([0, 0, 0, 0]), 'FRAME_INVALID', /below the minimum/);
  });

  test('header length over the limit, checked before the header arrives', () => {
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(MAX_HEADER_BYTES + 1);
    expectFrameError(prefix, 'TOO_LARGE', /header length 65537 is over the limit/);
    const small = new FrameDecoder({ maxHeaderBytes: 100 });
    prefix.writeUInt32BE(101);
    expectFrameError(prefix, 'TOO_LARGE', /over the limit of 100/, small);
  });

  test('header that is not UTF-8', () => {
    expectFrameError(rawFrame(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 'FRAME_INVALID', /not valid UTF-8/);
  });

  test('header that is not JSON', () => {
    expectFrameError(rawFrame('{"type":'), 'FRAME_INVALID', /not valid JSON/);
  });

  test('header that is JSON but not an object', () => {
    for (const text of ['[1,2]', 'null', '"hi"', '42']) {
      expectFrameError(rawFrame(text), 'FRAME_INVALID', /must be a JSON object/);
    }
  });

  test('missing or malformed type', () => {
    for (const text of [
      '{}',
      '{"type":1}',
      '{"type":""}',
      '{"type":"Echo"}',
      '{"type":"1x"}',
      `{"type":"${'a'.repeat(65)}"}`,
    ]) {
      expectFrameError(rawFrame(text), 'FRAME_INVALID', /header.type/);
    }
  });

  test('malformed size', () => {
    for (const text of ['{"type":"x","size":-1}', '{"type":"x","size":1.5}', '{"type":"x","size":"3"}']) {
      expectFrameError(rawFrame(text), 'FRAME_INVALID', /header.size/);
    }
  });

  test('size over the body limit, checked before the body arrives', () => {
    const decoder = new FrameDecoder({ maxBodyBytes: 1024 });
    expectFrameError(
      rawFrame('{"type":"x","size":1025}'),
      'TOO_LARGE',
      /1025 bytes is over the limit of 1024/,
      decoder,
    );
  });

  test('malformed id', () => {
    for (const text of [
      '{"type":"x","id":0}',
      '{"type":"x","id":-3}',
      '{"type":"x","id":1.5}',
      '{"type":"x","id":"7"}',
      '{"type":"x","id":9007199254740992}',
    ]) {
      expectFrameError(rawFrame(text), 'FRAME_INVALID', /header.id/);
    }
  });

  test('plain text is recognised as a text client only when asked (server side)', () => {
    const text = Buffer.from('GET / HTTP/1.1\r\n');
    assert.throws(
      () => decodeAll([text], new FrameDecoder({ detectTextClient: true })),
      (error: unknown) => error instanceof FrameError && error.textClient && error.code === 'FRAME_INVALID',
    );
    assert.throws(
      () => decodeAll([text]),
      (error: unknown) => error instanceof FrameError && !error.textClient && error.code === 'TOO_LARGE',
    );
  });

  test('after an error the decoder yields nothing more', () => {
    const decoder = new FrameDecoder();
    decoder.push(rawFrame('[]'));
    assert.throws(() => decoder.next());
    decoder.push(encodeFrameToBuffer({ type: 'ping', id: 1 }));
    assert.equal(decoder.next(), undefined);
  });
});

describe('encodeFrame', () => {
  test('sets size from the body and refuses an over-long header', () => {
    const [bytes] = encodeFrame({ type: 'echo', id: 1, size: 99 }, Buffer.from('abc'));
    const frames = decodeAll([bytes!]);
    assert.equal(frames[0]!.header.size, 3);
    assert.throws(() => encodeFrame({ type: 'x', pad: 'a'.repeat(MAX_HEADER_BYTES) }), { code: 'TOO_LARGE' });
  });
});
