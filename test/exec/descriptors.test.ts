import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { startExec } from './helpers.js';

/** Descriptors this process holds now: server, client and every pipe live in the test process. */
function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Lets libuv finish the closes it has queued (a destroyed socket's fd closes on a later turn). */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await nextTurn();
}

const COMMANDS = 1000;
const AT_ONCE = 8;

for (const spawner of ['native', 'node'] as const) {
  describe(`${spawner} spawner: descriptors`, () => {
    test(
      `${COMMANDS} commands with stdin left open leave no descriptor behind`,
      { timeout: 120_000 },
      async (t) => {
        const env = await startExec({ spawner });
        try {
          // The library's spawn() pipes stdin by default; nobody ends it here.
          const once = async (): Promise<void> => {
            const remote = env.client.spawn(['true']);
            remote.stdout.resume();
            remote.stderr.resume();
            assert.equal((await remote.exited).code, 0);
          };
          for (let i = 0; i < AT_ONCE; i++) await once(); // lazy handles (signal wraps, pools) exist now
          await settle();
          const before = openDescriptors();
          let next = 0;
          await Promise.all(
            Array.from({ length: AT_ONCE }, async () => {
              while (next++ < COMMANDS) await once();
            }),
          );
          await settle();
          const afterRuns = openDescriptors();
          t.diagnostic(`${spawner}: ${before} descriptors before ${COMMANDS} commands, ${afterRuns} after`);
          // A leak is one per command (1,000); a little slack for Node's own lazily opened handles.
          assert.ok(
            afterRuns - before <= 4,
            `${before} → ${afterRuns} descriptors over ${COMMANDS} commands`,
          );
        } finally {
          await env.stop();
        }
      },
    );

    test('stdin ended, stdin off, and a killed command leave none either', { timeout: 60_000 }, async () => {
      const env = await startExec({ spawner });
      try {
        const kinds = [
          () => env.client.exec(['cat'], { input: 'x' }),
          () => env.client.exec(['true']),
          () => env.client.exec(['sleep', '10'], { timeoutMs: 50 }),
        ];
        for (const kind of kinds) await kind();
        await settle();
        const before = openDescriptors();
        for (let round = 0; round < 30; round++) await Promise.all(kinds.map((kind) => kind()));
        await settle();
        assert.ok(openDescriptors() - before <= 4, `${before} → ${openDescriptors()} descriptors`);
      } finally {
        await env.stop();
      }
    });
  });
}
