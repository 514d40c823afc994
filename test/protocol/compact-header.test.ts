import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { readCompactHeader, TYPE_PATTERN } from '../../src/protocol/compact-header.js';
import { FrameDecoder, FrameError } from '../../src/protocol/decoder.js';
import { encodeFrame, encodeFrameToBuffer, type FrameHeader } from '../../src/protocol/frame.js';

const type = fc.stringMatching(/^[a-z][a-z0-9-]{0,63}$/);
const requestId = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const size = fc.integer({ min: 0, max: 65536 });

/** The header bytes of an encoded frame. */
function headerText(frame: Buffer): string {
  const length = frame.readUInt32BE(0);
  return frame.toString('utf8', 4, 4 + length);
}

/** What the decoder makes of a header text followed by `bodySize` bytes: the header or an error code. */
function decodeHeader(text: string, bodySize: number): FrameHeader | string {
  const bytes = Buffer.from(text);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(bytes.length);
  const decoder = new FrameDecoder();
  decoder.push(Buffer.concat([prefix, bytes, Buffer.alloc(bodySize)]));
  try {
    const frame = decoder.next();
    return frame?.header ?? 'body pending';
  } catch (error) {
    assert.ok(error instanceof FrameError);
    return error.code;
  }
}

/** JSON.parse plus the protocol's checks on type, id and size. */
function validHeaderByJson(text: string): unknown {
  try {
    const value = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    if (typeof value.type !== 'string' || !TYPE_PATTERN.test(value.type)) return undefined;
    const { id, size: bodySize } = value;
    if (id !== undefined && !(Number.isSafeInteger(id) && id >= 1)) return undefined;
    if (bodySize !== undefined && !(Number.isSafeInteger(bodySize) && bodySize >= 0)) return undefined;
    return value;
  } catch {
    return undefined;
  }
}

/** Near-compact header texts: the compact grammar with every piece sometimes broken. */
const nearCompactText = fc
  .tuple(
    fc.oneof(type, fc.constantFrom('', 'Echo', '1x', 'a b', 'é', 'a"b', 'a'.repeat(65))),
    fc.option(
      fc.tuple(
        fc.constantFrom(',"id":', ', "id":', ',"ID":', ',"id" :'),
        fc.oneof(
          requestId.map(String),
          fc.constantFrom(
            '0',
            '00',
            '01',
            '-1',
            '1.5',
            '1e3',
            '"7"',
            '9007199254740991',
            '9007199254740992',
            '9999999999999999',
            '12345678901234567',
          ),
        ),
      ),
    ),
    fc.option(
      fc.tuple(
        fc.constantFrom(',"size":', ',"size" :', ',"sizes":'),
        fc.oneof(size.map(String), fc.constantFrom('0', '007', '-0', '2.0', '9007199254740992')),
      ),
    ),
    fc.constantFrom('}', ' }', '},', '', ',"note":1}', '}}'),
  )
  .map(
    ([name, id, bodySize, end]) =>
      `{"type":"${name}"${id ? id[0] + id[1] : ''}${bodySize ? bodySize[0] + bodySize[1] : ''}${end}`,
  );

describe('compact headers', () => {
  test('whatever the compact reader accepts, JSON reads the same and finds valid (property)', () => {
    fc.assert(
      fc.property(nearCompactText, (text) => {
        const bytes = Buffer.from(text);
        const compact = readCompactHeader(bytes, 0, bytes.length);
        if (compact !== undefined) assert.deepEqual(compact, validHeaderByJson(text));
      }),
      { numRuns: 2000 },
    );
  });

  test('the decoder gives the same header or error as JSON alone would (property)', () => {
    fc.assert(
      fc.property(nearCompactText, (text) => {
        const byJson = validHeaderByJson(text) as FrameHeader | undefined;
        const decoded = decodeHeader(text, byJson?.size ?? 0);
        if (byJson === undefined) assert.equal(typeof decoded, 'string', `expected an error for ${text}`);
        else assert.deepEqual(decoded, byJson);
      }),
      { numRuns: 2000 },
    );
  });

  test('every header the encoder writes compactly is read compactly, and is the JSON of its fields (property)', () => {
    fc.assert(
      fc.property(type, fc.option(requestId), fc.uint8Array({ maxLength: 64 }), (name, id, body) => {
        const header: FrameHeader = id === null ? { type: name } : { type: name, id };
        const frame = encodeFrameToBuffer(header, body);
        const text = headerText(frame);
        const expected = { ...header, ...(body.length > 0 ? { size: body.length } : {}) };
        assert.deepEqual(JSON.parse(text), expected);
        const bytes = Buffer.from(text);
        assert.deepEqual(readCompactHeader(bytes, 0, bytes.length), expected);
      }),
    );
  });

  test('a header inside a larger chunk is read within its bounds only', () => {
    const chunk = Buffer.from('xx{"type":"echo"},"id":5}');
    assert.deepEqual(readCompactHeader(chunk, 2, 17), { type: 'echo' });
    assert.equal(readCompactHeader(chunk, 2, 16), undefined);
  });

  test('a header right after one of a type its own type starts with, or ends inside, reads right', () => {
    const read = (text: string, end = text.length): FrameHeader | undefined =>
      readCompactHeader(Buffer.from(text), 0, end);
    const cases: [string, FrameHeader | undefined][] = [
      ['{"type":"echo","id":1}', { type: 'echo', id: 1 }],
      ['{"type":"echoes","id":2}', { type: 'echoes', id: 2 }],
      ['{"type":"echo","id":3}', { type: 'echo', id: 3 }],
      ['{"type":"ech","id":4}', { type: 'ech', id: 4 }],
      ['{"type":"ech"}', { type: 'ech' }],
      ['{"type":"echX"}', undefined],
      ['{"type":"ech', undefined],
      ['{"type":"ech"', undefined],
    ];
    for (const [text, expected] of cases) assert.deepEqual(read(text), expected, text);
    read('{"type":"echo"}');
    assert.equal(read('{"type":"echo"}', 14), undefined, 'the closing quote past the end');
  });

  test('each header reads as JSON does, whatever header came before it (property)', () => {
    fc.assert(
      fc.property(nearCompactText, nearCompactText, (before, text) => {
        const first = Buffer.from(before);
        readCompactHeader(first, 0, first.length);
        const bytes = Buffer.from(text);
        const compact = readCompactHeader(bytes, 0, bytes.length);
        if (compact !== undefined) assert.deepEqual(compact, validHeaderByJson(text));
      }),
      { numRuns: 2000 },
    );
  });

  test('many different type names in turn each come back as themselves', () => {
    const names = Array.from({ length: 500 }, (_, i) => `t${i.toString(36)}-${'x'.repeat(i % 7)}`);
    for (const name of [...names, ...names.reverse()]) {
      const text = headerText(encodeFrameToBuffer({ type: name, id: 3 }));
      const bytes = Buffer.from(text);
      assert.deepEqual(readCompactHeader(bytes, 0, bytes.length), { type: name, id: 3 });
    }
  });
});

describe('encodeFrame with an id given apart from the header', () => {
  test('the id replaces the header own, in the compact and in the JSON form', () => {
    const compact = headerText(encodeFrame({ type: 'echo', id: 1 }, Buffer.from('hi'), 7)[0]!);
    assert.equal(compact, '{"type":"echo","id":7,"size":2}');
    const json = headerText(encodeFrame({ type: 'exit', code: 0 }, undefined, 9)[0]!);
    assert.deepEqual(JSON.parse(json), { type: 'exit', code: 0, id: 9 });
  });

  test('size is written when the body has bytes or the header named one, as in the JSON form', () => {
    assert.equal(headerText(encodeFrameToBuffer({ type: 'ping', id: 4 })), '{"type":"ping","id":4}');
    assert.equal(
      headerText(encodeFrameToBuffer({ type: 'ping', id: 4, size: 0 })),
      '{"type":"ping","id":4,"size":0}',
    );
    assert.equal(
      headerText(encodeFrameToBuffer({ type: 'ping', id: 4, size: 99 }, Buffer.from('abc'))),
      '{"type":"ping","id":4,"size":3}',
    );
  });

  test('headers the compact form cannot carry go through JSON unchanged', () => {
    for (const header of [
      { type: 'Upper', id: 1 },
      { type: 'x', id: 1.5 },
      { type: 'x', id: -1 },
      { type: 'x', id: 2 ** 53 },
      { type: 'x', note: 'é' },
    ] as FrameHeader[]) {
      assert.deepEqual(JSON.parse(headerText(encodeFrameToBuffer(header))), header);
    }
  });
});
