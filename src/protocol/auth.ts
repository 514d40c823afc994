import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** Protocol version this implementation speaks; `hello`/`welcome` carry it. */
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

/** A fresh nonce per connection makes a recorded proof useless on any other connection. */
export function createNonce(): string {
  return randomBytes(32).toString('base64');
}

/** HMAC-SHA256(key = UTF-8 token, msg = 'sockit-auth-v1:' + nonce), base64 (PROTOCOL section 2). */
export function computeProof(token: string, nonce: string): string {
  return createHmac('sha256', Buffer.from(token, 'utf8'))
    .update(`sockit-auth-v1:${nonce}`, 'utf8')
    .digest('base64');
}

/**
 * Decodes `text` only if it is canonical base64 (standard alphabet, padded, nothing around it):
 * Node's decoder skips junk, spaces and missing padding and takes base64url too, so one proof
 * would have many accepted spellings. Re-encoding and comparing refuses every other spelling.
 */
export function decodeCanonicalBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** Compares the peer's proof with the expected one in constant time; only canonical base64 is accepted. */
export function verifyProof(token: string, nonce: string, proof: unknown): boolean {
  if (typeof proof !== 'string') return false;
  const expected = Buffer.from(computeProof(token, nonce), 'base64');
  const given = decodeCanonicalBase64(proof);
  if (given === undefined) return false;
  // Length is not secret (always 32 bytes for a real proof); compare equal-length buffers only.
  return given.length === expected.length && timingSafeEqual(given, expected);
}
