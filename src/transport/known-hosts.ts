import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fromFileError, SockitError } from '../errors.js';

/** Normalises a SHA-256 fingerprint to Node's form: upper-case hex pairs joined by colons. */
export function normalizeFingerprint(text: string): string {
  const hex = text
    .replace(/^sha256:/i, '')
    .replace(/[^0-9a-f]/gi, '')
    .toUpperCase();
  if (hex.length !== 64)
    throw new SockitError('USAGE', `"${text}" is not a SHA-256 fingerprint (64 hex digits)`);
  return hex.match(/../g)!.join(':');
}

function readPins(file: string): Map<string, string> {
  const pins = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw fromFileError(error, file, 'cannot read known-hosts file');
  }
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [host, fingerprint] = trimmed.split(/\s+/);
    if (host && fingerprint) pins.set(host, fingerprint);
  }
  return pins;
}

/**
 * Trust on first use, like SSH's known_hosts: the first fingerprint seen for `hostPort` is
 * pinned in `file`; later connections must present the same one.
 * Returns 'pinned' when it was just added, 'known' when it matched.
 */
export function checkKnownHost(file: string, hostPort: string, fingerprint: string): 'known' | 'pinned' {
  const pinned = readPins(file).get(hostPort);
  if (pinned === undefined) {
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      appendFileSync(file, `${hostPort} ${fingerprint}\n`, { mode: 0o600 });
    } catch (error) {
      // A file error, not a socket one: it must not read "no such socket file".
      throw fromFileError(error, file, 'cannot pin the TLS fingerprint in known-hosts file');
    }
    return 'pinned';
  }
  if (pinned === fingerprint) return 'known';
  throw new SockitError(
    'TLS_FINGERPRINT_CHANGED',
    `the TLS certificate of ${hostPort} changed: pinned ${pinned}, now ${fingerprint}. ` +
      `Someone may be intercepting the connection. If the server really has a new certificate, ` +
      `delete the line for ${hostPort} in ${file} (or pass --fingerprint ${fingerprint}).`,
  );
}
