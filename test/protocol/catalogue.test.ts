import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { CATALOGUE, type HeaderOfType } from '../../src/protocol/catalogue.js';
import { DATA_CHUNK_BYTES, EMPTY_SHA256 } from '../../src/protocol/files.js';

const validate = (header: { type: string; [field: string]: unknown }) =>
  CATALOGUE.get(header.type)!.validate(header);

test('one validator per frame: types, bounds, enums, nested objects and cross-field rules', () => {
  assert.equal(
    validate({ type: 'exec', argv: ['ls', '-l'], pty: { term: 'xterm', rows: 24, cols: 80 } }),
    undefined,
  );
  assert.match(validate({ type: 'exec', argv: ['ls'], shell: 'ls' })!, /exactly one of "argv"/);
  assert.match(validate({ type: 'exec', argv: [''] })!, /"argv\[0\]" \(the program\) must not be empty/);
  assert.match(
    validate({ type: 'exec', argv: ['a\0'] })!,
    /"argv" must be a non-empty list of strings without NUL/,
  );
  assert.match(
    validate({ type: 'exec', argv: ['a'], pty: { term: 'xterm', rows: 0, cols: 80 } })!,
    /"pty.rows"/,
  );
  assert.match(validate({ type: 'signal', signal: 'SIGHUP' })!, /must be one of SIGINT, SIGTERM, SIGKILL/);
  assert.match(validate({ type: 'put', path: 'a' })!, /^put: a put needs "fileSize"/);
  assert.match(validate({ type: 'put', path: 'a', fileSize: 1, mode: 0o10000 })!, /"mode" must be 0-0o7777/);
  assert.match(validate({ type: 'join', name: ' padded' })!, /chat name must be 1-64 characters/);
  assert.match(validate({ type: 'tunnel-open', host: 'h' })!, /needs "host" and "port"/);
  assert.equal(validate({ type: 'tunnel-open', path: '/run/x.sock' }), undefined);
  assert.equal(validate({ type: 'exit', code: null, signal: 'SIGKILL', durationMs: 3.5 }), undefined);
});

test('unknown fields are ignored (newer peers add them)', () => {
  assert.equal(validate({ type: 'stat', path: 'a', compress: 'zstd', future: { x: 1 } }), undefined);
});

test('body limits per type and phase: declared, capped by the phase, none outside its phases', () => {
  const limit = (type: string, phase: 'handshake' | 'anonymous' | 'authenticated') =>
    CATALOGUE.bodyLimit(type, phase, phase === 'anonymous' ? 65536 : 16 * 1024 * 1024);
  assert.equal(limit('hello', 'handshake'), 0);
  assert.equal(limit('auth', 'anonymous'), 0);
  assert.equal(limit('data', 'authenticated'), DATA_CHUNK_BYTES);
  assert.equal(limit('data', 'anonymous'), 0, 'files never run before authentication');
  assert.equal(limit('echo', 'anonymous'), 65536);
  assert.equal(limit('echo', 'authenticated'), 16 * 1024 * 1024);
  assert.equal(limit('tunnel-data', 'authenticated'), 64 * 1024);
  assert.equal(limit('not-declared', 'authenticated'), 16 * 1024 * 1024);
});

test("final frames and a request's answers come from its declaration", () => {
  assert.equal(CATALOGUE.isFinal('exec', 'stdout'), false);
  assert.equal(CATALOGUE.isFinal('exec', 'exit'), true);
  assert.equal(CATALOGUE.isFinal('get', 'error'), true);
  assert.equal(CATALOGUE.isFinal('tunnel-listen', 'tunnel-accept'), false);
  assert.equal(CATALOGUE.isFinal('a-type-of-your-own', 'anything'), true);
  assert.match(CATALOGUE.replyProblem('stat', { type: 'exit' })!, /does not answer "stat"/);
  assert.match(CATALOGUE.replyProblem('get', { type: 'get-start' })!, /"fileSize" is required/);
  assert.equal(CATALOGUE.replyProblem('get', { type: 'from-a-newer-server' }), undefined);
  assert.equal(CATALOGUE.replyProblem('a-type-of-your-own', { type: 'exit' }), undefined);
});

test('header types derive from the declarations', () => {
  const header: HeaderOfType<'put'> = { type: 'put', path: 'a', fileSize: 1, checksums: ['xxh64'] };
  // @ts-expect-error fileSize is declared a whole number
  const wrong: HeaderOfType<'put'> = { type: 'put', path: 'a', fileSize: '1' };
  // @ts-expect-error resize needs rows and cols
  const missing: HeaderOfType<'resize'> = { type: 'resize', rows: 1 };
  assert.ok(header && wrong && missing);
});

test('the written-out SHA-256 of nothing is what node:crypto computes', () => {
  assert.equal(EMPTY_SHA256, createHash('sha256').digest('hex'));
});
