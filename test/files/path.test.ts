import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SockitError } from '../../src/errors.js';
import { partialDownloadName, partialUploadName } from '../../src/protocol/files.js';
import { parseRemotePath } from '../../src/services/files/path.js';

function refused(path: unknown, code = 'FORBIDDEN'): void {
  assert.throws(
    () => parseRemotePath(path),
    (error: unknown) => error instanceof SockitError && error.code === code,
    `expected ${code} for ${JSON.stringify(path)}`,
  );
}

describe('parseRemotePath', () => {
  test('plain relative paths become names; "." and empty segments are dropped', () => {
    assert.deepEqual(parseRemotePath('dir/a.bin'), ['dir', 'a.bin']);
    assert.deepEqual(parseRemotePath('./dir//sub/./a.bin/'), ['dir', 'sub', 'a.bin']);
    assert.deepEqual(parseRemotePath('with space/ünïcödé 文件.txt'), ['with space', 'ünïcödé 文件.txt']);
    assert.deepEqual(parseRemotePath('..hidden/...'), ['..hidden', '...']);
  });

  test('the root is only accepted where asked for', () => {
    assert.deepEqual(parseRemotePath('', { allowRoot: true }), []);
    assert.deepEqual(parseRemotePath('.', { allowRoot: true }), []);
    refused('', 'BAD_REQUEST');
    refused('./', 'BAD_REQUEST');
  });

  test('".." anywhere is refused, even when it would stay inside', () => {
    for (const path of ['..', '../x', 'a/../../x', 'a/../b', 'a/..', './..']) refused(path);
  });

  test('absolute paths and drive letters are refused', () => {
    for (const path of ['/etc/passwd', '//server/share', 'C:/Windows', 'c:evil']) refused(path);
  });

  test('NUL and control characters are refused', () => {
    for (const path of ['a\u0000b', 'a.bin\u0000.txt', 'line\nbreak', 'tab\there', 'del\u007f'])
      refused(path);
  });

  test('backslash tricks are refused', () => {
    for (const path of ['..\\..\\etc\\passwd', 'a\\b', '\\\\server\\share', 'dir\\..\\x']) refused(path);
  });

  test('over-long names and paths are refused', () => {
    assert.deepEqual(parseRemotePath('n'.repeat(255)), ['n'.repeat(255)]);
    refused('n'.repeat(256));
    refused('é'.repeat(128)); // 256 bytes in UTF-8
    refused(`${'d/'.repeat(2048)}x`);
  });

  test("the server's own temporary names are refused", () => {
    refused(partialUploadName('a.bin'));
    refused(`dir/${partialUploadName('a.bin')}`);
    refused(`${partialDownloadName('a.bin')}/x`);
    refused('.sockit-anything');
  });

  test('a path that is not a string is a bad request', () => {
    for (const path of [undefined, 42, ['a'], { path: 'a' }]) refused(path, 'BAD_REQUEST');
  });
});

test('partial names fit in one file-system name whatever the target name', () => {
  assert.ok(Buffer.byteLength(partialUploadName('é'.repeat(127))) <= 255);
  assert.ok(Buffer.byteLength(partialDownloadName('é'.repeat(127))) <= 255);
  assert.notEqual(partialUploadName('a'), partialUploadName('b'));
});
