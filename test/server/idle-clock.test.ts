import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { IdleClock } from '../../src/server/idle-clock.js';

/** A watched connection whose traffic the test makes by hand. */
function target() {
  const idleAt: number[] = [];
  let now = 0;
  return {
    activity: 0,
    idleAt,
    onIdle() {
      idleAt.push(now);
    },
    advance(ms: number) {
      for (let i = 0; i < ms; i++) {
        now++;
        mock.timers.tick(1);
      }
    },
  };
}

function assertFiredBetween(at: number, earliest: number, latest: number): void {
  assert.ok(at >= earliest && at <= latest, `fired at ${at}`);
}

describe('IdleClock', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval'] }));
  afterEach(() => mock.timers.reset());

  test('fires after the timeout of quiet, within one tick of it, and again after each further timeout', () => {
    const clock = new IdleClock(800);
    const connection = target();
    clock.watch(connection);
    connection.advance(2000);
    assert.equal(connection.idleAt.length, 2);
    assertFiredBetween(connection.idleAt[0]!, 800, 900);
    assertFiredBetween(connection.idleAt[1]!, 1600, 1800);
    clock.stop();
  });

  test('traffic restarts the quiet time', () => {
    const clock = new IdleClock(800);
    const connection = target();
    clock.watch(connection);
    for (let i = 0; i < 10; i++) {
      connection.advance(500);
      connection.activity++;
    }
    assert.deepEqual(connection.idleAt, []);
    connection.advance(1000);
    assert.equal(connection.idleAt.length, 1);
    assertFiredBetween(connection.idleAt[0]!, 5800, 5900);
    clock.stop();
  });

  test('an unwatched connection is never told, and the clock stops with the last one', () => {
    const clock = new IdleClock(100);
    const kept = target();
    const dropped = target();
    clock.watch(kept);
    clock.watch(dropped);
    clock.unwatch(dropped);
    kept.advance(150);
    assert.equal(kept.idleAt.length, 1);
    assert.deepEqual(dropped.idleAt, []);
    clock.unwatch(kept);
    kept.advance(500);
    assert.equal(kept.idleAt.length, 1);
  });
});
