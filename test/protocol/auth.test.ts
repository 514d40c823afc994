import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeProof, decodeCanonicalBase64, verifyProof } from '../../src/protocol/auth.js';

const TOKEN = 'a-token';
const NONCE = 'bm9uY2U=';

describe('auth proof decoding', () => {
  it('accepts the canonical proof', () => {
    assert.equal(verifyProof(TOKEN, NONCE, computeProof(TOKEN, NONCE)), true);
  });

  it('refuses every other spelling of the same bytes', () => {
    // A nonce whose proof has a '+' or '/', so its base64url spelling differs in the alphabet.
    let nonce = NONCE;
    for (let i = 0; !/[+/]/.test(computeProof(TOKEN, nonce)); i++) nonce = `${NONCE}${i}`;
    const proof = computeProof(TOKEN, nonce); // 32 bytes: 43 characters and one '='
    assert.ok(proof.endsWith('='));
    const base64url = Buffer.from(proof, 'base64').toString('base64url');
    const spellings = {
      'trailing junk': `${proof}!!`,
      'a trailing space': `${proof} `,
      'a leading space': ` ${proof}`,
      'a space inside': `${proof.slice(0, 10)} ${proof.slice(10)}`,
      'a newline': `${proof}\n`,
      'missing padding': proof.slice(0, -1),
      'extra padding': `${proof}=`,
      base64url,
      'base64url, padded': `${base64url}=`,
    };
    for (const [what, spelling] of Object.entries(spellings)) {
      assert.equal(verifyProof(TOKEN, nonce, spelling), false, what);
    }
    // Node's lenient decoder reads these as the proof's very bytes: the refusals above are the check's doing.
    for (const lenient of [proof.slice(0, -1), `${proof} `, base64url]) {
      assert.ok(Buffer.from(lenient, 'base64').equals(Buffer.from(proof, 'base64')));
    }
  });

  it('decodeCanonicalBase64 returns the bytes only for the canonical form', () => {
    assert.deepEqual(decodeCanonicalBase64('aGk='), Buffer.from('hi'));
    assert.equal(decodeCanonicalBase64('aGk'), undefined);
    assert.equal(decodeCanonicalBase64('aG k='), undefined);
    assert.equal(decodeCanonicalBase64('_-8='), undefined);
    assert.deepEqual(decodeCanonicalBase64(''), Buffer.alloc(0));
  });

  it('refuses non-strings and wrong lengths', () => {
    assert.equal(verifyProof(TOKEN, NONCE, 42), false);
    assert.equal(verifyProof(TOKEN, NONCE, 'aGk='), false);
  });
});
