/**
 * Self-signed TLS certificates without third-party dependencies.
 *
 * node:crypto can create keys and sign bytes but cannot build an X.509 certificate, so this module
 * hand-encodes the few DER/ASN.1 structures a minimal v3 certificate needs (RFC 5280) and signs the
 * TBSCertificate with ECDSA P-256 / SHA-256. P-256 is used because its keys are fast to generate,
 * small, and accepted by every TLS stack Node can talk to.
 */

import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { fromFileError, invalidOption } from '../errors.js';
import { checkPrivateDir, readPrivateFile, writeFileAtomic } from '../state.js';

/** Options for {@link generateSelfSignedCertificate} and {@link loadOrCreateCertificate}. */
export interface SelfSignedOptions {
  /** Subject and issuer common name. Default `'sockit'`. */
  commonName?: string;
  /**
   * Extra subjectAltName entries, added to the defaults `localhost`, `127.0.0.1` and `::1`.
   * Strings that parse as IPv4/IPv6 become iPAddress entries, anything else a dNSName.
   */
  altNames?: string[];
  /** Validity in days from now (the certificate is also valid from one day ago). Default 3650. */
  days?: number;
}

/** A generated (or loaded) certificate with its private key. */
export interface SelfSignedCertificate {
  /** PEM-encoded X.509 certificate. */
  certPem: string;
  /** PEM-encoded PKCS#8 private key. */
  keyPem: string;
  /** SHA-256 fingerprint, formatted like `X509Certificate#fingerprint256` (`AB:CD:...`). */
  fingerprint256: string;
}

/** Result of {@link loadOrCreateCertificate}; `created` tells whether new files were written. */
export interface StoredCertificate extends SelfSignedCertificate {
  created: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_ALT_NAMES = ['localhost', '127.0.0.1', '::1'];

// ---------------------------------------------------------------------------------------------------------
// Minimal DER encoder: only the types a certificate needs. Every value is a complete TLV as a Buffer.

function tlv(tag: number, content: Buffer): Buffer {
  const len = content.length;
  if (len < 0x80) return Buffer.concat([Buffer.from([tag, len]), content]);
  // Long form: 0x80 | number of length octets, then the length big-endian with no leading zeros.
  const octets: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) octets.unshift(n & 0xff);
  return Buffer.concat([Buffer.from([tag, 0x80 | octets.length, ...octets]), content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const octetString = (content: Buffer): Buffer => tlv(0x04, content);
const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const boolTrue = (): Buffer => Buffer.from([0x01, 0x01, 0xff]);
/** `[n] EXPLICIT`: constructed context tag wrapping a complete TLV. */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** `[n] IMPLICIT` primitive: context tag replacing the tag of a primitive value. */
const implicit = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);

/** BIT STRING; `unusedBits` counts the padding bits in the last byte. */
function bitString(content: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), content]));
}

/** INTEGER from unsigned big-endian bytes: minimal form, with a 0x00 pad so it stays positive. */
function uintBytes(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return tlv(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

const smallInt = (n: number): Buffer => uintBytes(Buffer.from([n]));

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  // The first two arcs share one sub-identifier; each sub-identifier is base-128, high bit = "more follows".
  const ids = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const id of ids) {
    const chunk = [id & 0x7f];
    for (let v = Math.floor(id / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime for 1950–2049, GeneralizedTime otherwise; always UTC with seconds, no fraction. */
function time(date: Date): Buffer {
  const y = date.getUTCFullYear();
  const pad = (n: number) => String(n).padStart(2, '0');
  const rest =
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds()) +
    'Z';
  if (y >= 1950 && y < 2050) return tlv(0x17, Buffer.from(pad(y % 100) + rest, 'ascii'));
  return tlv(0x18, Buffer.from(String(y).padStart(4, '0') + rest, 'ascii'));
}

// ---------------------------------------------------------------------------------------------------------
// Certificate pieces.

const OID = {
  commonName: '2.5.4.3',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  // `critical` defaults to FALSE, and DER forbids encoding default values, so it is omitted when false.
  return seq(oid(id), ...(critical ? [boolTrue()] : []), octetString(value));
}

function ipv4Bytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

/** Expands an address already validated by `net.isIPv6` (including `::` and a dotted IPv4 tail) to 16 bytes. */
function ipv6Bytes(ip: string): Buffer {
  let s = ip.split('%')[0]!; // a zone id ("fe80::1%eth0") has no meaning in a certificate
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = ipv4Bytes(s.slice(lastColon + 1));
    s = s.slice(0, lastColon + 1) + v4.readUInt16BE(0).toString(16) + ':' + v4.readUInt16BE(2).toString(16);
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros =
    tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const out = Buffer.alloc(16);
  for (const [i, g] of [...headGroups, ...zeros, ...tailGroups].entries()) {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  }
  return out;
}

/** GeneralNames for subjectAltName, deduplicated so repeated defaults do not produce duplicate entries. */
function generalNames(names: string[]): Buffer {
  const seen = new Set<string>();
  const entries: Buffer[] = [];
  for (const name of names) {
    let entry: Buffer;
    if (isIPv4(name)) entry = implicit(7, ipv4Bytes(name));
    else if (isIPv6(name)) entry = implicit(7, ipv6Bytes(name));
    else {
      // dNSName is an IA5String, so internationalised names must be converted to their punycode form.
      const ascii = /^[\x21-\x7e]+$/.test(name) ? name.toLowerCase() : domainToASCII(name);
      if (!ascii) throw invalidOption(`invalid subjectAltName: ${JSON.stringify(name)}`);
      entry = implicit(2, Buffer.from(ascii, 'ascii'));
    }
    const key = entry.toString('hex');
    if (!seen.has(key)) entries.push(entry);
    seen.add(key);
  }
  return seq(...entries);
}

function toPem(label: string, der: Buffer): string {
  const b64 = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Same format as `X509Certificate#fingerprint256`, so callers can compare against peer certificates. */
function fingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

/**
 * Generates a self-signed ECDSA P-256 certificate suitable for a TLS server.
 *
 * The certificate is an end-entity certificate (CA:FALSE, keyUsage digitalSignature, extendedKeyUsage
 * serverAuth) whose subjectAltName always covers `localhost`, `127.0.0.1` and `::1`, so local clients can
 * verify it by passing the certificate itself as `ca`, or pin it by `fingerprint256`.
 *
 * @throws {TypeError} if `days` is not a positive finite number or an alt name cannot be encoded.
 */
export function generateSelfSignedCertificate(options: SelfSignedOptions = {}): SelfSignedCertificate {
  const commonName = options.commonName ?? 'sockit';
  const days = options.days ?? 3650;
  if (!Number.isFinite(days) || days <= 0) throw invalidOption(`days must be a positive number, got ${days}`);

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

  // Certificate times have one-second resolution; truncate so the encoded value is exactly what we meant.
  const now = Math.floor(Date.now() / 1000) * 1000;
  // Backdated by a day to tolerate clock skew between this host and its clients.
  const notBefore = new Date(now - DAY_MS);
  const notAfter = new Date(now + Math.round(days * DAY_MS));

  // RFC 5280 wants a positive serial of at most 20 octets with ~64+ bits of entropy. Clearing the top bit
  // keeps it positive without a pad byte and setting the next keeps it exactly 16 octets long.
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;

  const signatureAlgorithm = seq(oid(OID.ecdsaWithSha256)); // parameters MUST be absent for ECDSA (RFC 5758)
  const name = seq(set(seq(oid(OID.commonName), utf8String(commonName))));
  const extensions = seq(
    // An empty SEQUENCE means cA=FALSE: DER omits the default value.
    extension(OID.basicConstraints, true, seq()),
    // digitalSignature is bit 0, i.e. the top bit of the single byte; the other 7 bits are unused.
    extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)),
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
    extension(OID.subjectAltName, false, generalNames([...DEFAULT_ALT_NAMES, ...(options.altNames ?? [])])),
  );
  const tbs = seq(
    explicit(0, smallInt(2)), // version v3
    uintBytes(serial),
    signatureAlgorithm,
    name, // issuer == subject: self-signed
    seq(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }), // already a DER SubjectPublicKeyInfo
    explicit(3, extensions),
  );
  // For EC keys crypto.sign returns the DER ECDSA-Sig-Value X.509 expects inside the BIT STRING.
  const der = seq(tbs, signatureAlgorithm, bitString(sign('sha256', tbs, privateKey)));

  return {
    certPem: toPem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    fingerprint256: fingerprint(der),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Persistence.

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromFileError(err, path, 'cannot read TLS file');
  }
}

/**
 * Loads `dir/cert.pem` and `dir/key.pem`, or generates and stores a new pair if either is missing, so a
 * server keeps one stable certificate (and fingerprint) across restarts.
 *
 * `dir` is created with mode 0700 if needed; the key is written with mode 0600 and both files are written
 * atomically. `options` only apply when a certificate is generated. Concurrent first calls from several
 * processes on the same `dir` are not coordinated.
 *
 * @throws {SockitError} INVALID_OPTION if both files exist but are unparsable or the key does not belong to the certificate
 *   (they are left untouched rather than silently replaced, since clients may have pinned the fingerprint).
 */
export function loadOrCreateCertificate(dir: string, options: SelfSignedOptions = {}): StoredCertificate {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const certPem = readIfExists(certPath);
  // The key is checked as the token is: ours, 0600, not a symlink, in a directory only we can write.
  const keyPem = readPrivateFile(keyPath, 'TLS key', { optional: true });

  if (certPem !== undefined && keyPem !== undefined) {
    const checked = checkCertificatePair(certPem, keyPem, certPath, keyPath);
    return { certPem, keyPem, fingerprint256: checked.fingerprint256, created: false };
  }

  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fromFileError(err, dir, 'cannot create the TLS state directory');
  }
  checkPrivateDir(dir);
  // Remove a lone leftover first: the key is then written before the cert, so an interruption at any
  // point leaves at most one file, which the next call regenerates instead of pairing with a stale half.
  rmSync(certPath, { force: true });
  rmSync(keyPath, { force: true });
  const generated = generateSelfSignedCertificate(options);
  writeFileAtomic(keyPath, generated.keyPem, 0o600);
  writeFileAtomic(certPath, generated.certPem, 0o644);
  return { ...generated, created: true };
}

/**
 * Parses a certificate and its private key and checks that they belong together. Every failure
 * is one INVALID_OPTION line naming the file at fault, never OpenSSL's own text alone.
 */
export function checkCertificatePair(
  certPem: string | Buffer,
  keyPem: string | Buffer,
  certPath: string,
  keyPath: string,
): { fingerprint256: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw invalidOption(`${certPath} is not a PEM certificate (${(err as Error).message})`, err);
  }
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch (err) {
    throw invalidOption(`${keyPath} is not a PEM private key (${(err as Error).message})`, err);
  }
  if (!matches) throw invalidOption(`${keyPath} is not the private key of ${certPath}`);
  return { fingerprint256: cert.fingerprint256 };
}

/** Reads `--cert FILE --key FILE`: file errors name the file, a bad PEM names the file too. */
export function readCertificateFiles(certPath: string, keyPath: string): { cert: Buffer; key: Buffer } {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw fromFileError(err, path, `cannot read ${what}`);
    }
  };
  const cert = read(certPath, 'TLS certificate');
  const key = read(keyPath, 'TLS key');
  checkCertificatePair(cert, key, certPath, keyPath);
  return { cert, key };
}
