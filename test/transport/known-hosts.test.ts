import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SockitError } from '../../src/errors.js';
import { checkKnownHost, normalizeFingerprint } from '../../src/transport/known-hosts.js';
import { tempDir } from '../helpers.js';

const A = Array.from({ length: 32 }, () => 'AB').join(':');
const B = Array.from({ length: 32 }, () => 'CD').join(':');

test('first use pins, same fingerprint is known, a different one is refused with advice', async () => {
  const dir = await tempDir();
  const file = join(dir.path, 'state', 'known_hosts');
  try {
    assert.equal(checkKnownHost(file, '127.0.0.1:1', A), 'pinned');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(checkKnownHost(file, '127.0.0.1:1', A), 'known');
    assert.equal(checkKnownHost(file, '[::1]:1', B), 'pinned', 'pins are per host and port');
    assert.throws(
      () => checkKnownHost(file, '127.0.0.1:1', B),
      (error: unknown) =>
        error instanceof SockitError &&
        error.code === 'TLS_FINGERPRINT_CHANGED' &&
        error.message.includes(file) &&
        error.message.includes(B),
    );
    assert.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 2);
  } finally {
    await dir.cleanup();
  }
});

test('fingerprints are normalised from any common spelling', () => {
  assert.equal(normalizeFingerprint(A.toLowerCase()), A);
  assert.equal(normalizeFingerprint(`sha256:${A.replaceAll(':', '')}`), A);
  assert.throws(() => normalizeFingerprint('abc'), /not a SHA-256 fingerprint/);
});
