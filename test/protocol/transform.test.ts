import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { upperAscii, upperAsciiInPlace } from '../../src/protocol/transform.js';

/** The definition, a byte at a time. */
function upperByByte(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.map((byte) => (byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte)));
}

test('upperAscii changes a-z only, at every length and alignment (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), (bytes, shift) => {
      // Copied behind `shift` spare bytes so the input starts at every offset modulo 4.
      const backing = Buffer.alloc(bytes.length + shift);
      backing.set(bytes, shift);
      const input = backing.subarray(shift);
      assert.deepEqual(upperAscii(input), upperByByte(bytes));
      assert.deepEqual(input, Buffer.from(bytes), 'the input is left as it was');
    }),
    { numRuns: 1000 },
  );
});

test('upperAscii keeps multi-byte UTF-8 and the bytes around the letters', () => {
  const text = 'héllo wörld, `@[{ az AZ ÿ 0x7f\u007f';
  assert.equal(upperAscii(Buffer.from(text)).toString(), 'HéLLO WöRLD, `@[{ AZ AZ ÿ 0X7F\u007f');
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  assert.deepEqual(upperAscii(every), upperByByte(every));
});

test('upperAsciiInPlace changes exactly the range it is given, at every alignment (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), fc.nat(300), (bytes, a, b) => {
      const start = Math.min(a, b, bytes.length);
      const end = Math.min(Math.max(a, b), bytes.length);
      const out = Buffer.from(bytes);
      upperAsciiInPlace(out, start, end);
      const expected = Buffer.concat([
        Buffer.from(bytes.subarray(0, start)),
        upperByByte(bytes.subarray(start, end)),
        Buffer.from(bytes.subarray(end)),
      ]);
      assert.deepEqual(out, expected);
    }),
    { numRuns: 1000 },
  );
});
