/**
 * The reconnect schedule with an injected random and a fake clock: no timers run here.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SockitError } from '../../src/errors.js';
import { Backoff, RECONNECT_DEFAULTS, retry } from '../../src/transport/backoff.js';

describe('backoff', { timeout: 10_000 }, () => {
  test('ceilings double from 250 ms to the 30 s cap; the top draw reaches the ceiling', () => {
    const backoff = new Backoff({ random: () => 0.999_999 });
    const waits = Array.from({ length: 10 }, () => backoff.next());
    assert.deepEqual(waits, [250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    assert.equal(backoff.attempts, 10);
  });

  test('full jitter: a draw of 0 waits the floor, never 0 ms; a draw of 0.5 waits half way', () => {
    const low = new Backoff({ random: () => 0 });
    assert.deepEqual(
      Array.from({ length: 3 }, () => low.next()),
      [RECONNECT_DEFAULTS.floorMs, RECONNECT_DEFAULTS.floorMs, RECONNECT_DEFAULTS.floorMs],
    );
    const mid = new Backoff({ random: () => 0.5, initialMs: 1000, floorMs: 0, capMs: 4000 });
    assert.deepEqual(
      Array.from({ length: 4 }, () => mid.next()),
      [500, 1000, 2000, 2000],
    );
  });

  test('the schedule restarts only after a connection stayed up for stableMs', () => {
    let now = 0;
    const backoff = new Backoff({ random: () => 0.999_999, stableMs: 10_000, now: () => now });
    backoff.next();
    backoff.next();
    backoff.succeeded();
    now += 100; // up for 100 ms, then dropped: a flapping server keeps climbing
    assert.equal(backoff.next(), 1000);
    backoff.succeeded();
    now += 10_000;
    assert.equal(backoff.next(), 250);
  });

  test('bad settings are refused', () => {
    assert.throws(() => new Backoff({ initialMs: 10, floorMs: 50 }), /INVALID_OPTION|floorMs <= initialMs/);
    assert.throws(() => new Backoff({ initialMs: 1000, capMs: 500 }), /initialMs <= capMs/);
  });

  test('retry waits the schedule between retryable failures and stops at maxAttempts', async () => {
    const waited: number[] = [];
    const told: string[] = [];
    let calls = 0;
    const refused = new SockitError('CONNECT_FAILED', 'connection refused');
    const result = await retry(
      async () => {
        calls++;
        if (calls < 3) throw refused;
        return 'up';
      },
      {
        backoff: new Backoff({ random: () => 0.999_999 }),
        waitFirst: true,
        wait: async (ms) => {
          waited.push(ms);
        },
        onRetry: (info) => told.push(`${info.attempt}:${info.delayMs}:${info.error ? 'failed' : 'first'}`),
      },
    );
    assert.equal(result, 'up');
    assert.deepEqual(waited, [250, 500, 1000]);
    assert.deepEqual(told, ['1:250:first', '2:500:failed', '3:1000:failed']);

    let tries = 0;
    await assert.rejects(
      retry(
        async () => {
          tries++;
          throw refused;
        },
        { backoff: new Backoff(), maxAttempts: 4, wait: async () => {} },
      ),
      refused,
    );
    assert.equal(tries, 4);
  });

  test('retry throws a permanent error at once', async () => {
    const denied = new SockitError('AUTH_FAILED', 'bad token');
    let tries = 0;
    await assert.rejects(
      retry(
        async () => {
          tries++;
          throw denied;
        },
        { backoff: new Backoff(), wait: async () => assert.fail('must not wait') },
      ),
      denied,
    );
    assert.equal(tries, 1);
  });
});
