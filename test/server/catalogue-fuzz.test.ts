/**
 * The catalogue-driven server fuzz: for every frame type a client may send, the hostile frames
 * test/server/catalogue-frames.ts derives from its declaration, against a real server on port 0
 * running every service. Each gets the answer docs/protocol.md section 6 documents; the server
 * keeps serving, and every connection it accepted is gone at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { computeProof } from '../../src/protocol/auth.js';
import type { CatalogueEntry } from '../../src/protocol/catalogue.js';
import { CATALOGUE } from '../../src/protocol/catalogue.js';
import type { Frame, FrameHeader } from '../../src/protocol/frame.js';
import type { TrustPhase } from '../../src/protocol/schema.js';
import { type Server, serve } from '../../src/server/server.js';
import { chatService } from '../../src/services/chat.js';
import { echoService } from '../../src/services/echo.js';
import { execService } from '../../src/services/exec/index.js';
import { filesService } from '../../src/services/files/index.js';
import { tunnelService } from '../../src/services/tunnel/index.js';
import { TEST_TOKEN, tempDir } from '../helpers.js';
import { clientFrames, hostileHeaders, validHeader, withExtraFields } from './catalogue-frames.js';
import { RawPeer } from './peer.js';

/** The id of the ping that closes each batch: its pong says everything before it was handled. */
const LAST_ID = 9_007_199_254_740_991;

/** Follow-ups are tried on a request that stays open meanwhile: these keep theirs open. */
const HOLDING_OPENERS: Record<string, (id: number) => FrameHeader> = {
  exec: (id) => ({ type: 'exec', id, argv: ['sleep', '30'], stdin: true }),
  put: (id) => ({ type: 'put', id, path: `fuzz/${id}.bin`, fileSize: 10, overwrite: true }),
};

/** Client frames the server does not act on as such (an `error` or `pong` from a client is never an answer it waits for). */
const PASSIVE = new Set(['error', 'pong']);

describe('catalogue-driven fuzzing of a server that runs every service', () => {
  let server: Server;
  let state: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    state = await tempDir();
    server = await serve({
      listen: 'tcp://127.0.0.1:0',
      token: TEST_TOKEN,
      stateDir: state.path,
      services: [
        echoService(),
        execService({ allow: ['true', 'sleep'] }),
        filesService({ root: state.path }),
        chatService(),
        tunnelService({ allow: [] }),
      ],
    });
  });
  after(async () => {
    await server.close(1000);
    await state.cleanup();
  });

  /** A connection in `phase`: fresh (handshake), welcomed without a token (anonymous), or authenticated. */
  async function peerIn(phase: TrustPhase): Promise<RawPeer> {
    const peer = await RawPeer.open(server.address);
    if (phase === 'authenticated') await peer.handshake();
    if (phase === 'anonymous') {
      peer.send({ type: 'hello', version: 1 });
      assert.equal((await peer.next())?.header.type, 'welcome');
    }
    return peer;
  }

  /** Sends `frames`, then a ping; the frames answered before its pong (survived) or the close. */
  async function exchange(
    phase: TrustPhase,
    frames: { header: Record<string, unknown>; body?: Buffer }[],
  ): Promise<{ survived: boolean; answers: FrameHeader[] }> {
    const peer = await peerIn(phase);
    try {
      for (const { header, body } of frames) peer.send(header as FrameHeader, body);
      peer.send({ type: 'ping', id: LAST_ID });
      const answers: FrameHeader[] = [];
      for (let frame: Frame | undefined = await peer.next(); frame; frame = await peer.next()) {
        if (frame.header.type === 'pong' && frame.header.id === LAST_ID) return { survived: true, answers };
        answers.push(frame.header);
      }
      return { survived: false, answers };
    } finally {
      peer.socket.destroy();
      await peer.closed;
    }
  }

  /** Asserts the connection was closed with exactly `code` as its connection error. */
  async function expectConnectionError(
    phase: TrustPhase,
    frame: { header: Record<string, unknown>; body?: Buffer },
    code: string,
    what: string,
  ): Promise<void> {
    const { survived, answers } = await exchange(phase, [frame]);
    assert.equal(survived, false, `${what}: the connection should have been closed`);
    const error = answers.find((answer) => answer.type === 'error' && answer.id === undefined);
    assert.equal(error?.code, code, `${what}: ${JSON.stringify(answers)}`);
  }

  const byRole = (role: string): CatalogueEntry[] =>
    clientFrames().filter((entry) => entry.spec.role === role && !PASSIVE.has(entry.type));

  test('every field of every request at and past its bounds, of the wrong type, or missing: the documented error for its id', async () => {
    let tried = 0;
    for (const entry of byRole('request')) {
      const hostile = hostileHeaders(entry);
      if (hostile.length === 0) continue;
      const frames = hostile.map(({ header }, index) => ({ header: { ...header, id: index + 1 } }));
      const { survived, answers } = await exchange('authenticated', frames);
      assert.ok(survived, `${entry.type}: the connection must live on`);
      hostile.forEach(({ what }, index) => {
        const answer = answers.find((frame) => frame.id === index + 1);
        assert.equal(answer?.type, 'error', `${entry.type} ${what}: answered ${JSON.stringify(answer)}`);
        assert.equal(answer.code, entry.spec.invalidCode ?? 'BAD_REQUEST', `${entry.type} ${what}`);
      });
      tried += hostile.length;
    }
    assert.ok(tried > 100, `only ${tried} hostile requests were generated`);
  });

  test('hostile follow-ups end their open request with BAD_REQUEST; without a request they are dropped', async () => {
    for (const entry of byRole('follow-up')) {
      const opener = [...CATALOGUE.entries()].find(
        (candidate) => candidate.spec.followUps?.includes(entry.type) && HOLDING_OPENERS[candidate.type],
      );
      const hostile = [
        ...hostileHeaders(entry),
        // Bound to the wrong request: a follow-up of another service's request.
        ...(opener ? [] : [{ what: 'no request open', header: validHeader(entry) }]),
      ];
      const frames = hostile.flatMap(({ header }, index) => {
        const id = index + 1;
        const open = opener ? [{ header: HOLDING_OPENERS[opener.type]!(id) as Record<string, unknown> }] : [];
        return [...open, { header: { ...header, id } }];
      });
      const { survived, answers } = await exchange('authenticated', frames);
      assert.ok(survived, `${entry.type}: the connection must live on`);
      hostile.forEach(({ what }, index) => {
        const errors = answers.filter((frame) => frame.id === index + 1 && frame.type === 'error');
        if (opener)
          assert.equal(errors[0]?.code, 'BAD_REQUEST', `${entry.type} ${what}: ${JSON.stringify(errors)}`);
        else assert.deepEqual(errors, [], `${entry.type} without a request is dropped`);
      });
    }
  });

  test('a follow-up its request does not take is BAD_REQUEST for that request', async () => {
    const { survived, answers } = await exchange('authenticated', [
      { header: HOLDING_OPENERS.exec!(1) as Record<string, unknown> },
      { header: { type: 'put-end', id: 1 } },
      { header: HOLDING_OPENERS.put!(2) as Record<string, unknown> },
      { header: { type: 'resize', id: 2, rows: 1, cols: 1 } },
    ]);
    assert.ok(survived);
    for (const id of [1, 2]) {
      const error = answers.find((frame) => frame.id === id && frame.type === 'error');
      assert.equal(error?.code, 'BAD_REQUEST', JSON.stringify(answers));
      assert.match(String(error.message), /does not take/);
    }
  });

  test('hostile messages, hellos and auths close the connection with their documented code', async () => {
    const cases: { phase: TrustPhase; entry: CatalogueEntry }[] = [
      ...byRole('message').map((entry) => ({ phase: 'authenticated' as const, entry })),
      { phase: 'handshake', entry: CATALOGUE.get('hello')! },
      { phase: 'handshake', entry: CATALOGUE.get('attach')! },
      { phase: 'anonymous', entry: CATALOGUE.get('auth')! },
    ];
    for (const { phase, entry } of cases) {
      for (const { what, header } of hostileHeaders(entry)) {
        await expectConnectionError(
          phase,
          { header },
          entry.spec.invalidCode ?? 'BAD_REQUEST',
          `${entry.type} ${what}`,
        );
      }
    }
  });

  test('extra fields are ignored: never a BAD_REQUEST or a closed connection for them', async () => {
    for (const entry of [...byRole('request'), ...byRole('follow-up')]) {
      const header = { ...withExtraFields(entry), id: 1 };
      const { survived, answers } = await exchange('authenticated', [{ header }]);
      assert.ok(survived, `${entry.type} with extra fields: ${JSON.stringify(answers)}`);
      const codes = answers.filter((frame) => frame.type === 'error').map((frame) => frame.code);
      assert.ok(
        !codes.includes('BAD_REQUEST') && !codes.includes('FRAME_INVALID'),
        `${entry.type}: ${codes}`,
      );
    }
  });

  test('every frame type outside its phases: AUTH_REQUIRED for a request, else UNSUPPORTED and close', async () => {
    for (const phase of ['handshake', 'anonymous', 'authenticated'] as const) {
      for (const entry of clientFrames()) {
        if (entry.spec.phases?.includes(phase) || PASSIVE.has(entry.type)) continue;
        const header = { ...validHeader(entry), ...(entry.spec.id === 'none' ? {} : { id: 1 }) };
        const what = `${entry.type} in phase ${phase}`;
        if (entry.spec.role === 'request' && phase === 'anonymous') {
          const { survived, answers } = await exchange(phase, [{ header }]);
          assert.ok(survived, what);
          assert.equal(answers.find((frame) => frame.id === 1)?.code, 'AUTH_REQUIRED', what);
        } else await expectConnectionError(phase, { header }, 'UNSUPPORTED', what);
      }
    }
  });

  test("a body one byte over its type's declared limit is TOO_LARGE before it is read", async () => {
    for (const entry of clientFrames()) {
      const { body } = entry.spec;
      if (body === 'max' || !entry.spec.phases?.includes('authenticated')) continue;
      const header = { ...validHeader(entry), ...(entry.spec.id === 'none' ? {} : { id: 1 }) };
      await expectConnectionError(
        'authenticated',
        { header, body: Buffer.alloc(body + 1) },
        'TOO_LARGE',
        `${entry.type} with ${body + 1} bytes`,
      );
    }
  });

  test('the server still serves, and holds no connection of the fuzz', async () => {
    const peer = await RawPeer.open(server.address);
    peer.send({ type: 'hello', version: 1 });
    const welcome = (await peer.next())!;
    peer.send({ type: 'auth', proof: computeProof(TEST_TOKEN, String(welcome.header.nonce)) });
    assert.equal((await peer.next())?.header.type, 'ready');
    peer.send({ type: 'echo', id: 1 }, Buffer.from('alive'));
    assert.equal((await peer.next())?.body.toString(), 'alive');
    peer.socket.destroy();
    await peer.closed;
    // The server sees the last close a moment after the client: wait for that event, bounded.
    for (let turns = 0; server.connectionCount > 0 && turns < 1000; turns++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(server.connectionCount, 0);
  });
});
