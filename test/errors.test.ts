import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CATALOGUE } from '../src/errors.js';

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const documented = new Map(
  [...docs.matchAll(/^\| `([A-Z_]+)` \| (wire|local) \| (.+) \|$/gm)].map((m) => [
    m[1]!,
    { kind: m[2]!, summary: m[3]! },
  ]),
);

test('every catalogued error code is documented in docs/errors.md with its kind and summary', () => {
  for (const [code, entry] of Object.entries(ERROR_CATALOGUE)) {
    const doc = documented.get(code);
    assert.ok(doc, `${code} is missing from docs/errors.md`);
    assert.equal(doc.kind, entry.wire ? 'wire' : 'local', `${code} kind`);
    assert.equal(doc.summary, entry.summary, `${code} summary`);
  }
});

test('docs/errors.md documents no code the catalogue lacks', () => {
  for (const code of documented.keys())
    assert.ok(code in ERROR_CATALOGUE, `${code} is documented but not in src/errors.ts`);
});

test('the wire codes are exactly those of the protocol brief', () => {
  const wire = Object.entries(ERROR_CATALOGUE)
    .filter(([, entry]) => entry.wire)
    .map(([code]) => code)
    .sort();
  const brief = [
    'BAD_REQUEST',
    'FRAME_INVALID',
    'TOO_LARGE',
    'UNSUPPORTED',
    'AUTH_REQUIRED',
    'AUTH_FAILED',
    'FORBIDDEN',
    'NOT_FOUND',
    'CONFLICT',
    'TIMEOUT',
    'BUSY',
    'INTEGRITY',
    'UNAVAILABLE',
    'INTERNAL',
  ];
  assert.deepEqual(wire, brief.sort());
});
