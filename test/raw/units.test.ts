import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/options.js';
import { AccessList, parseCidrList } from '../../src/raw/cidr.js';
import { formatHexRows } from '../../src/raw/hex-dump.js';
import { execSpecFrom, parseRawAddress } from '../../src/raw/options.js';

describe('allow/deny CIDR matching', () => {
  it('parses IPv4, IPv6 and bracketed entries, comma or space separated', () => {
    assert.deepEqual(parseCidrList(['10.0.0.0/8, ::1', '[fd00::]/8']), [
      { network: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { network: '::1', prefix: 128, family: 'ipv6' },
      { network: 'fd00::', prefix: 8, family: 'ipv6' },
    ]);
    for (const bad of ['example.com', '10.0.0.0/33', '::/129', '1.2.3/8', '10.0.0.0/x']) {
      assert.throws(() => parseCidrList([bad]), /USAGE|is not|prefix/);
    }
  });

  it('refuses a value that lists no address: an empty allow list must not admit everyone', () => {
    for (const empty of ['', ' ', ',', ' , ,\t']) {
      assert.throws(
        () => AccessList.fromOptions([empty]),
        (error: unknown) =>
          (error as { code?: string }).code === 'USAGE' && /--allow: .* lists no address/.test(String(error)),
      );
      assert.throws(() => AccessList.fromOptions([], ['10.0.0.0/8', empty]), /--deny: .* lists no address/);
    }
  });

  it('admits by allow list, refuses by deny list, deny wins', () => {
    const list = AccessList.fromOptions(['10.0.0.0/8', '2001:db8::/32'], ['10.1.0.0/16']);
    assert.equal(list.admits('10.2.3.4'), true);
    assert.equal(list.admits('10.1.2.3'), false);
    assert.equal(list.admits('192.168.1.1'), false);
    assert.equal(list.admits('2001:db8::42'), true);
    assert.equal(list.admits('2001:db9::1'), false);
    assert.equal(list.admits('::ffff:10.2.3.4'), true, 'IPv4-mapped IPv6 matches IPv4 rules');
    assert.equal(list.admits('::ffff:10.1.0.1'), false);
    assert.equal(list.admits('fe80::1%eth0'), false);
    assert.equal(list.admits(undefined), true, 'unix sockets have no address to judge');
    assert.equal(list.admits('not an ip'), false);
  });

  it('without rules everyone is admitted; deny alone refuses only matches', () => {
    assert.equal(new AccessList([], []).admits('203.0.113.9'), true);
    const denyOnly = AccessList.fromOptions([], ['::1']);
    assert.equal(denyOnly.admits('::1'), false);
    assert.equal(denyOnly.admits('127.0.0.1'), true);
    assert.equal(denyOnly.active, true);
  });
});

describe('hex dump', () => {
  it('formats rows like hexdump -C with direction and offset', () => {
    assert.equal(
      formatHexRows(Buffer.from('hello world\n'), 16, '>'),
      '> 00000010  68 65 6c 6c 6f 20 77 6f  72 6c 64 0a              |hello world.|\n',
    );
    const rows = formatHexRows(Buffer.alloc(17, 0), 0, '<', '[::1]:9');
    assert.equal(rows.split('\n').length, 3);
    assert.match(rows, /^\[::1\]:9 < 00000010 {2}00 {3}/m);
  });
});

describe('raw option parsing', () => {
  it('parses netcat-style times: bare seconds or with a unit', () => {
    assert.equal(parseDuration('5', '-w'), 5000);
    assert.equal(parseDuration('0.5', '-w'), 500);
    assert.equal(parseDuration('250ms', '-i'), 250);
    assert.equal(parseDuration('2m', '-i'), 120_000);
    assert.throws(() => parseDuration('soon', '-i'), /-i takes a duration/);
  });

  it('splits a single --exec value on blanks and keeps argv otherwise', () => {
    assert.deepEqual(execSpecFrom(['grep -v x'], undefined), { argv: ['grep', '-v', 'x'] });
    assert.deepEqual(execSpecFrom(['tr', 'a-z', 'A-Z'], undefined), { argv: ['tr', 'a-z', 'A-Z'] });
    assert.deepEqual(execSpecFrom(undefined, 'a | b'), { shell: 'a | b' });
    assert.throws(() => execSpecFrom(['cat'], 'cat'), /exclude each other/);
  });

  it('--udp makes scheme-less addresses UDP and conflicts with tcp://', () => {
    assert.equal(parseRawAddress('127.0.0.1:9', true).kind, 'udp');
    assert.equal(parseRawAddress('udp://[::1]:9', false).kind, 'udp');
    assert.throws(() => parseRawAddress('tcp://127.0.0.1:9', true), /disagree/);
  });
});
