import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import {
  generateSelfSignedCertificate,
  loadOrCreateCertificate,
  type SelfSignedCertificate,
} from '../../src/transport/self-signed.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** DER time value as it must appear in the certificate: tag, length, ASCII digits + 'Z'. */
function derTime(date: Date, generalized: boolean): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  const text = (generalized ? iso : iso.slice(2)) + 'Z';
  return Buffer.concat([Buffer.from([generalized ? 0x18 : 0x17, text.length]), Buffer.from(text, 'ascii')]);
}

describe('generateSelfSignedCertificate', () => {
  it('produces a parseable, correctly signed certificate with matching key and fingerprint', () => {
    const result = generateSelfSignedCertificate();
    const cert = new X509Certificate(result.certPem);

    assert.equal(cert.subject, 'CN=sockit');
    assert.equal(cert.issuer, 'CN=sockit');
    assert.equal(cert.checkPrivateKey(createPrivateKey(result.keyPem)), true);
    assert.equal(cert.verify(cert.publicKey), true);
    assert.equal(result.fingerprint256, cert.fingerprint256);
    assert.match(result.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(result.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('encodes the end-entity extensions', () => {
    const cert = new X509Certificate(generateSelfSignedCertificate().certPem);
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']); // Node reports extendedKeyUsage here
    // keyUsage digitalSignature, critical: OID 2.5.29.15, BOOLEAN TRUE, OCTET STRING { BIT STRING 07 80 }.
    const keyUsage = Buffer.from('0603551d0f0101ff040403020780', 'hex');
    assert.ok(cert.raw.includes(keyUsage), 'keyUsage digitalSignature extension present');
    // basicConstraints, critical, empty SEQUENCE (cA defaults to FALSE).
    assert.ok(cert.raw.includes(Buffer.from('0603551d130101ff04023000', 'hex')));
  });

  it('uses a random positive 16-byte serial', () => {
    const a = new X509Certificate(generateSelfSignedCertificate().certPem).serialNumber;
    const b = new X509Certificate(generateSelfSignedCertificate().certPem).serialNumber;
    for (const serial of [a, b]) assert.match(serial, /^[4-7][0-9A-F]{31}$/);
    assert.notEqual(a, b);
  });

  it('has the default subjectAltName entries', () => {
    const cert = new X509Certificate(generateSelfSignedCertificate().certPem);
    assert.equal(cert.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkIP('::1'), '::1');
  });

  it('honours commonName and classifies altNames as IP or DNS, without duplicates', () => {
    const result = generateSelfSignedCertificate({
      commonName: 'node-7.internal',
      altNames: [
        'Example.test',
        '10.1.2.3',
        '2001:db8::1',
        '::ffff:192.0.2.1',
        'localhost',
        '::1',
        'bücher.de',
      ],
    });
    const cert = new X509Certificate(result.certPem);
    assert.equal(cert.subject, 'CN=node-7.internal');
    assert.equal(cert.issuer, 'CN=node-7.internal');
    assert.equal(
      cert.subjectAltName,
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:example.test, ' +
        'IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:1, IP Address:0:0:0:0:0:FFFF:C000:201, ' +
        'DNS:xn--bcher-kva.de',
    );
    assert.equal(cert.checkHost('example.test'), 'example.test');
    assert.equal(cert.checkIP('10.1.2.3'), '10.1.2.3');
    assert.equal(cert.checkIP('2001:db8:0::1'), '2001:db8:0::1');
    assert.equal(cert.checkIP('10.1.2.4'), undefined);
    assert.equal(cert.checkHost('other.test'), undefined);
  });

  it('is valid from one day ago until `days` from now, as UTCTime before 2050', () => {
    const start = Math.floor(Date.now() / 1000) * 1000;
    const cert = new X509Certificate(generateSelfSignedCertificate({ days: 30 }).certPem);
    const end = Date.now();
    const notBefore = Date.parse(cert.validFrom);
    const notAfter = Date.parse(cert.validTo);

    assert.ok(notBefore >= start - DAY_MS && notBefore <= end - DAY_MS, `notBefore ${cert.validFrom}`);
    assert.equal(notAfter - notBefore, 31 * DAY_MS);
    assert.ok(cert.raw.includes(derTime(new Date(notBefore), false)));
    assert.ok(cert.raw.includes(derTime(new Date(notAfter), false)));
  });

  it('defaults to 3650 days', () => {
    const cert = new X509Certificate(generateSelfSignedCertificate().certPem);
    assert.equal(Date.parse(cert.validTo) - Date.parse(cert.validFrom), 3651 * DAY_MS);
  });

  it('switches to GeneralizedTime for years from 2050 on', () => {
    const cert = new X509Certificate(generateSelfSignedCertificate({ days: 100 * 365 }).certPem);
    const notAfter = new Date(cert.validTo);
    assert.ok(notAfter.getUTCFullYear() >= 2050, cert.validTo); // would read as 19xx if encoded as UTCTime
    assert.ok(cert.raw.includes(derTime(notAfter, true)));
    assert.ok(cert.raw.includes(derTime(new Date(cert.validFrom), false)));
  });

  it('rejects invalid options', () => {
    assert.throws(() => generateSelfSignedCertificate({ days: 0 }), { code: 'INVALID_OPTION' });
    assert.throws(() => generateSelfSignedCertificate({ days: Number.NaN }), { code: 'INVALID_OPTION' });
    assert.throws(() => generateSelfSignedCertificate({ altNames: [''] }), { code: 'INVALID_OPTION' });
  });
});

describe('generated certificate over real TLS', () => {
  let creds: SelfSignedCertificate;
  let server: tls.Server;
  let port: number;

  before(async () => {
    creds = generateSelfSignedCertificate();
    server = tls.createServer({ cert: creds.certPem, key: creds.keyPem }, (socket) => socket.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.close();
    await once(server, 'close');
  });

  async function connect(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    await once(socket, 'secureConnect');
    return socket;
  }

  async function readAll(socket: tls.TLSSocket): Promise<string> {
    let data = '';
    socket.setEncoding('utf8');
    for await (const chunk of socket) data += chunk;
    return data;
  }

  it('serves the certificate; an unverifying client sees the same fingerprint', async () => {
    const socket = await connect({ rejectUnauthorized: false });
    try {
      assert.equal(socket.getPeerCertificate().fingerprint256, creds.fingerprint256);
      assert.equal(socket.authorized, false); // self-signed and not trusted: no ca given
      assert.equal(await readAll(socket), 'ok');
    } finally {
      socket.destroy();
    }
  });

  it('is authorized when trusted as ca with servername localhost', async () => {
    const socket = await connect({ ca: creds.certPem, servername: 'localhost' });
    try {
      assert.equal(socket.authorized, true, String(socket.authorizationError));
      assert.equal(socket.getPeerCertificate().fingerprint256, creds.fingerprint256);
      assert.equal(await readAll(socket), 'ok');
    } finally {
      socket.destroy();
    }
  });

  it('is authorized for the IP SAN when connecting to 127.0.0.1 without servername', async () => {
    const socket = await connect({ ca: creds.certPem });
    try {
      assert.equal(socket.authorized, true, String(socket.authorizationError));
    } finally {
      socket.destroy();
    }
  });

  it('fails hostname verification for a name not in the SAN', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: creds.certPem, servername: 'other.test' });
    const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    socket.destroy();
    assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

describe('loadOrCreateCertificate', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sockit-cert-'));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const posix = { skip: process.platform === 'win32' ? 'POSIX permissions only' : false };

  it('creates the pair once and then keeps returning it', posix, async () => {
    const dir = join(root, 'once', 'tls');
    const first = loadOrCreateCertificate(dir, { commonName: 'kept' });
    assert.equal(first.created, true);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'key.pem'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(dir, 'cert.pem'), 'utf8'), first.certPem);
    assert.equal(await readFile(join(dir, 'key.pem'), 'utf8'), first.keyPem);
    assert.deepEqual((await readdir(dir)).sort(), ['cert.pem', 'key.pem']); // no temp files left behind

    const second = loadOrCreateCertificate(dir, { commonName: 'ignored' });
    assert.equal(second.created, false);
    assert.equal(second.fingerprint256, first.fingerprint256);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
    assert.equal(new X509Certificate(second.certPem).subject, 'CN=kept');
  });

  it('regenerates when only one of the two files is present', async () => {
    const dir = join(root, 'orphan');
    const first = loadOrCreateCertificate(dir);
    await unlink(join(dir, 'cert.pem'));

    const second = loadOrCreateCertificate(dir);
    assert.equal(second.created, true);
    assert.notEqual(second.fingerprint256, first.fingerprint256);
    const cert = new X509Certificate(await readFile(join(dir, 'cert.pem')));
    assert.equal(cert.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'key.pem')))), true);
    assert.equal(loadOrCreateCertificate(dir).fingerprint256, second.fingerprint256);
  });

  it('refuses a key others can read, or a directory others can write, with the fix', posix, async () => {
    const dir = join(root, 'loose');
    loadOrCreateCertificate(dir);
    await chmod(join(dir, 'key.pem'), 0o644);
    assert.throws(() => loadOrCreateCertificate(dir), /USAGE|TLS key .*key\.pem has mode 0644: .*chmod 600/);
    assert.throws(() => loadOrCreateCertificate(dir), /chmod 600/);
    await chmod(join(dir, 'key.pem'), 0o600);
    await chmod(dir, 0o777);
    assert.throws(() => loadOrCreateCertificate(dir), /directory .*loose has mode 0777: .*chmod go-w/);
    await unlink(join(dir, 'key.pem')); // no key yet: the directory is checked before one is written
    assert.throws(() => loadOrCreateCertificate(dir), /chmod go-w/);
  });

  it('refuses a key that does not match the certificate and leaves the files alone', async () => {
    const dir = join(root, 'mismatch');
    loadOrCreateCertificate(dir);
    const foreignKey = generateSelfSignedCertificate().keyPem;
    await writeFile(join(dir, 'key.pem'), foreignKey);

    assert.throws(() => loadOrCreateCertificate(dir), {
      code: 'INVALID_OPTION',
      message: /key\.pem is not the private key of .*cert\.pem/,
    });
    assert.equal(await readFile(join(dir, 'key.pem'), 'utf8'), foreignKey);
  });
});
