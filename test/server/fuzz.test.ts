/**
 * Property tests against a real server on port 0 running every service: whatever bytes or
 * frames a peer sends, the server answers or closes that connection, and keeps serving others.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { connect } from '../../src/client/client.js';
import { computeProof } from '../../src/protocol/auth.js';
import { encodeFrameToBuffer } from '../../src/protocol/frame.js';
import type { Server } from '../../src/server/server.js';
import { serve } from '../../src/server/server.js';
import { chatService } from '../../src/services/chat.js';
import { echoService } from '../../src/services/echo.js';
import { execService } from '../../src/services/exec/index.js';
import { filesService } from '../../src/services/files/index.js';
import { TEST_TOKEN, tempDir } from '../helpers.js';

/** A watchdog, not a wait: a server that neither answers nor closes fails the test instead of hanging it. */
const HANG_WATCHDOG_MS = 10_000;

/** Sends `bytes` on a fresh connection and resolves once the server closed it or went quiet. */
function poke(port: number, chunks: Buffer[], authenticate: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let welcomed = !authenticate;
    let received = Buffer.alloc(0);
    const send = (): void => {
      for (const chunk of chunks) socket.write(chunk);
      // Ask for a pong after the garbage: its arrival (or the close) says the server has
      // dealt with everything before it.
      socket.write(encodeFrameToBuffer({ type: 'ping', id: 9_007_199_254_740_991 }));
    };
    socket.on('connect', () => {
      if (authenticate) socket.write(encodeFrameToBuffer({ type: 'hello', version: 1 }));
      else send();
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!welcomed) {
        const text = received.toString('latin1');
        const nonce = /"nonce":"([^"]+)"/.exec(text)?.[1];
        if (nonce === undefined) return;
        welcomed = true;
        socket.write(encodeFrameToBuffer({ type: 'auth', proof: computeProof(TEST_TOKEN, nonce) }));
        send();
        return;
      }
      if (received.includes('"type":"pong","id":9007199254740991')) socket.destroy();
    });
    socket.on('error', () => {}); // a reset is one of the allowed outcomes
    socket.on('close', () => resolve());
    socket.setTimeout(HANG_WATCHDOG_MS, () => {
      socket.destroy();
      reject(new Error('the server neither answered nor closed within 10 s'));
    });
  });
}

const jsonValue = fc.jsonValue({ maxDepth: 2 });
const requestTypes = [
  'echo',
  'exec',
  'put',
  'get',
  'list',
  'stat',
  'delete',
  'join',
  'say',
  'leave',
  'cancel',
  'stdin',
  'stdin-end',
  'signal',
  'data',
  'put-end',
  'ping',
  'hello',
  'auth',
  'zzz',
];
const frameArb = fc
  .record({
    type: fc.oneof(fc.constantFrom(...requestTypes), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/)),
    id: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
    fields: fc.dictionary(
      fc.constantFrom(
        'argv',
        'path',
        'room',
        'name',
        'size',
        'offset',
        'sha256',
        'signal',
        'cwd',
        'env',
        'overwrite',
        'resume',
        'timeoutMs',
        'recursive',
        'x',
      ),
      fc.oneof(
        jsonValue,
        fc.array(fc.string(), { maxLength: 3 }),
        fc.constantFrom('../x', '/etc/passwd', 'a/b', 'true'),
      ),
      { maxKeys: 4 },
    ),
    body: fc.uint8Array({ maxLength: 64 }),
  })
  .map(({ type, id, fields, body }) => {
    const header: Record<string, unknown> = { ...fields, type };
    delete header.size; // the encoder sets it from the body
    if (id !== undefined) header.id = id;
    return encodeFrameToBuffer(header as { type: string }, body);
  });

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
