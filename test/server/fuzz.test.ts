/**
 * Property tests against a real server on port 0 running every service: whatever bytes or
 * frames a peer sends, the server answers or closes that connection, and keeps serving others.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { connect } from '../../src/client/client.js';
import type { Server } from '../../src/server/server.js';
import { serve } from '../../src/server/server.js';
import { chatService } from '../../src/services/chat.js';
import { echoService } from '../../src/services/echo.js';
import { execService } from '../../src/services/exec/index.js';
import { filesService } from '../../src/services/files/index.js';
import { TEST_TOKEN, tempDir } from '../helpers.js';
import { frameArb, poke } from './fuzz-frames.js';

describe('fuzzing a server that runs every service', () => {
  let server: Server;
  let state: Awaited<ReturnType<typeof tempDir>>;
  let port: number;
  before(async () => {
    state = await tempDir();
    server = await serve({
      listen: 'tcp://127.0.0.1:0',
      token: TEST_TOKEN,
      stateDir: state.path,
      // A frame the fuzzer starts and never finishes (its length says more than follows) is cut
      // at these fixed deadlines: well inside poke's 10 s watchdog, so the outcome is the close.
      limits: { handshakeTimeoutMs: 2000, frameTimeoutMs: 2000 },
      services: [
        echoService(),
        execService({ allow: ['true'] }),
        filesService({ root: state.path }),
        chatService(),
      ],
    });
    const bound = server.addresses[0]!;
    assert.ok(bound.kind === 'tcp');
    port = bound.port;
  });
  after(async () => {
    await server.close(1000);
    await state.cleanup();
  });

  async function stillServing(): Promise<void> {
    const client = await connect(server.address, { token: TEST_TOKEN, stateDir: state.path });
    assert.equal((await client.echo('alive')).toString(), 'alive');
    await client.close();
  }

  test('random bytes before and after the handshake', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (chunks, authenticate) => {
          await poke(
            port,
            chunks.map((chunk) => Buffer.from(chunk)),
            authenticate,
          );
        },
      ),
      { numRuns: 60 },
    );
    await stillServing();
  });

  test('well-formed frames with random types and fields, authenticated', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 6 }), async (frames) => {
        await poke(port, frames, true);
      }),
      { numRuns: 150 },
    );
    await stillServing();
    // The fuzzer's escape attempts ('../x' as a put or delete path) never reached outside the root.
    assert.equal(existsSync(join(state.path, '..', 'x')), false);
  });
});
