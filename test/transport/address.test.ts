import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SockitError } from '../../src/errors.js';
import { formatAddress, isLoopback, parseAddress } from '../../src/transport/address.js';

test('every address form parses to one canonical text', () => {
  const cases: [string, string][] = [
    ['tcp://127.0.0.1:9000', 'tcp://127.0.0.1:9000'],
    ['tls://example.test:443', 'tls://example.test:443'],
    ['udp://[::1]:53', 'udp://[::1]:53'],
    ['unix:/run/sockit.sock', 'unix:/run/sockit.sock'],
    ['unix:///run/sockit.sock', 'unix:/run/sockit.sock'],
    ['unix:relative.sock', 'unix:relative.sock'],
    ['[::1]:7070', 'tcp://[::1]:7070'],
    ['localhost:7070', 'tcp://localhost:7070'],
    [':7070', 'tcp://127.0.0.1:7070'],
    ['7070', 'tcp://127.0.0.1:7070'],
    ['[::]:0', 'tcp://[::]:0'],
  ];
  for (const [input, canonical] of cases) assert.equal(formatAddress(parseAddress(input)), canonical, input);
});

test('the default kind and host apply to scheme-less addresses only', () => {
  assert.equal(formatAddress(parseAddress('9000', { defaultKind: 'udp' })), 'udp://127.0.0.1:9000');
  assert.equal(formatAddress(parseAddress('9000', { defaultHost: '::1' })), 'tcp://[::1]:9000');
  assert.equal(formatAddress(parseAddress('tls://h:1', { defaultKind: 'udp' })), 'tls://h:1');
});

test('bad addresses are USAGE errors that show the accepted forms', () => {
  for (const bad of [
    'nonsense',
    'http://x:1',
    'tcp://host',
    '::1:80',
    '[::1]80',
    '[nothex]:80',
    'host:99999',
    'unix:',
    'h:-1',
  ]) {
    assert.throws(
      () => parseAddress(bad),
      (error: unknown) =>
        error instanceof SockitError && error.code === 'USAGE' && /tcp:\/\/HOST:PORT/.test(error.message),
      bad,
    );
  }
});

test('loopback detection', () => {
  for (const text of ['127.0.0.1:1', '127.3.2.1:1', '[::1]:1', 'localhost:1', 'unix:/x'])
    assert.ok(isLoopback(parseAddress(text)), text);
  for (const text of ['0.0.0.0:1', '[::]:1', '10.0.0.1:1', 'example.test:1'])
    assert.ok(!isLoopback(parseAddress(text)), text);
});
