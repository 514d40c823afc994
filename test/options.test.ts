import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ERRNO_TABLE, fromFileError, fromSystemError, SockitError } from '../src/errors.js';
import {
  checkChoice,
  checkInteger,
  parseByteSize,
  parseChoice,
  parseChoiceList,
  parseDuration,
  parseInteger,
  parsePositiveInteger,
} from '../src/options.js';
import { resolveLimits } from '../src/server/limits.js';
import { serve } from '../src/server/server.js';
import { echoService } from '../src/services/echo.js';
import { execService } from '../src/services/exec/index.js';
import { generateSelfSignedCertificate } from '../src/transport/self-signed.js';

const invalid = (message: RegExp) => ({ code: 'INVALID_OPTION', message });

describe('the options module', () => {
  test('integers: decimal digits only', () => {
    assert.equal(parseInteger('0', '-n'), 0);
    assert.equal(parseInteger('42', '-n'), 42);
    assert.equal(parsePositiveInteger('7', '-c'), 7);
    for (const text of ['', ' ', '0x10', '1e3', '1.5', '-1', '+1', '12abc', 'Infinity', '9007199254740993']) {
      assert.throws(() => parseInteger(text, '-n'), invalid(/^-n takes a whole number; got /), text);
    }
    assert.throws(() => parsePositiveInteger('0', '-c'), invalid(/^-c must be at least 1; got 0$/));
  });

  test('byte sizes: binary units, optional B/iB', () => {
    assert.equal(parseByteSize('1048576', '--max'), 1048576);
    assert.equal(parseByteSize('100B', '--max'), 100);
    assert.equal(parseByteSize('64K', '--max'), 64 * 1024);
    assert.equal(parseByteSize('64KiB', '--max'), 64 * 1024);
    assert.equal(parseByteSize('10mb', '--max'), 10 * 1024 ** 2);
    assert.equal(parseByteSize('2G', '--max'), 2 * 1024 ** 3);
    assert.equal(parseByteSize('1T', '--max'), 1024 ** 4);
    for (const text of ['', 'K', '1.5M', '-1', '10Q', '0x10', '1e3']) {
      assert.throws(() => parseByteSize(text, '--max'), invalid(/^--max takes a byte size/), text);
    }
    assert.throws(() => parseByteSize('99999999999T', '--max'), invalid(/too large/));
  });

  test('durations: bare seconds or ms/s/m/h, returned in milliseconds', () => {
    assert.equal(parseDuration('5', '-w'), 5000);
    assert.equal(parseDuration('0.5', '-w'), 500);
    assert.equal(parseDuration('0', '-w'), 0);
    assert.equal(parseDuration('500ms', '-w'), 500);
    assert.equal(parseDuration('10s', '-w'), 10_000);
    assert.equal(parseDuration('2m', '-w'), 120_000);
    assert.equal(parseDuration('1h', '-w'), 3_600_000);
    for (const text of ['', 'soon', '5 s', '-1', '1d', '1e3', '0x10']) {
      assert.throws(() => parseDuration(text, '-w'), invalid(/^-w takes a duration such as 5s, 500ms/), text);
    }
  });

  test('choices name every allowed value', () => {
    assert.equal(parseChoice('warn', '--log-level', ['info', 'warn'] as const), 'warn');
    assert.throws(
      () => parseChoice('loud', '--log-level', ['info', 'warn']),
      invalid(/^--log-level must be one of info, warn; got "loud"$/),
    );
    assert.deepEqual(parseChoiceList('echo, chat,', '--open', ['echo', 'chat']), ['echo', 'chat']);
    assert.deepEqual(parseChoiceList('', '--open', ['echo']), []);
    assert.throws(
      () => parseChoiceList('echo,x', '--open', ['echo']),
      invalid(/unknown "x" \(choose from echo\)/),
    );
    assert.equal(checkInteger(3, 'n', 1), 3);
    assert.throws(() => checkInteger(0.5, 'n'), invalid(/^n must be a whole number >= 0, got 0.5$/));
    assert.throws(
      () => checkChoice('x', 'mode', ['a', 'b']),
      invalid(/^mode must be one of "a", "b", got "x"$/),
    );
  });
});

describe('the library checks its options with the same module: INVALID_OPTION, never a bare TypeError', () => {
  test('limits, services, certificates', async () => {
    assert.throws(
      () => resolveLimits({ maxConnections: 0 }),
      invalid(/limit maxConnections must be a whole number >= 1/),
    );
    assert.throws(() => resolveLimits({ idleTimeoutMs: -1 }), invalid(/limit idleTimeoutMs/));
    assert.throws(
      () => echoService({ transform: 'lower' as 'upper' }),
      invalid(/^echo transform must be one of "none", "upper", got "lower"$/),
    );
    assert.throws(() => execService({ allow: 'any', maxRunning: 0 }), invalid(/exec option maxRunning/));
    assert.throws(() => execService({ allow: [] }), invalid(/empty/));
    assert.throws(() => generateSelfSignedCertificate({ days: 0 }), invalid(/days/));
    await assert.rejects(
      serve({ listen: 'tcp://127.0.0.1:0', insecureNoAuth: true, limits: { maxOpenRequests: 0 } }),
      invalid(/maxOpenRequests/),
    );
  });
});

describe('one errno table', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: raw`), { code });

  test('sockets and files take their code from it, each with its own context', () => {
    assert.deepEqual(
      [fromSystemError(errno('ENOENT'), 'cannot connect to unix:/x')].map((e) => [e.code, e.message]),
      [['CONNECT_FAILED', 'cannot connect to unix:/x: no such socket file']],
    );
    assert.deepEqual(
      [fromFileError(errno('ENOENT'), '/a/b', 'cannot open')].map((e) => [e.code, e.message]),
      [['NOT_FOUND', 'cannot open /a/b: no such file or directory']],
    );
    assert.equal(fromSystemError(errno('EADDRNOTAVAIL'), 'x').code, 'UNAVAILABLE');
    assert.equal(fromFileError(errno('EPERM'), '/sys/x').code, 'FORBIDDEN');
    assert.equal(fromSystemError(errno('EWEIRD'), 'x').code, 'INTERNAL');
    for (const [name, meaning] of Object.entries(ERRNO_TABLE)) {
      assert.match(name, /^E[A-Z_0-9]+$/);
      assert.ok(meaning.reason.length > 0);
      assert.ok(fromSystemError(errno(name), 'x') instanceof SockitError);
    }
  });
});
