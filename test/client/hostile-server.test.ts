/**
 * The client fuzz: the real client against a hostile server (a raw TCP server this test owns)
 * that answers every request with the frames the catalogue declares for it, then splits,
 * garbles, reorders, mis-addresses, malforms, oversizes or truncates them. Whatever it does, the
 * client never hangs or crashes, and every request settles: with its answer, or with a
 * SockitError. Time-boxed by fast-check's run count and time limit.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { connect } from '../../src/client/client.js';
import { SockitError } from '../../src/errors.js';
import { CATALOGUE } from '../../src/protocol/catalogue.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrameToBuffer, type FrameHeader } from '../../src/protocol/frame.js';
import { tempDir } from '../helpers.js';
import { hostileHeaders, validHeader } from '../server/catalogue-frames.js';

/** What the hostile server does to the answers of one request. */
const MUTATIONS = [
  'none',
  'reorder',
  'malformed',
  'foreign-type',
  'wrong-id',
  'garble',
  'truncate',
  'oversize',
  'stray-body',
  'silence',
] as const;
type Mutation = (typeof MUTATIONS)[number];

/** One connection's script: how the welcome is sent, then per request (in arrival order) what is done. */
interface Script {
  welcome: 'valid' | 'malformed' | 'split';
  answers: { mutation: Mutation; seed: number }[];
  /** Largest piece the bytes are written in (1 = a byte at a time). */
  chunk: number;
}

/** Longest the whole exchange may take before the client counts as hung. */
const HANG_WATCHDOG_MS = 10_000;

/** The declared answers of a request: its non-final replies once each, then a final one. */
function declaredAnswers(type: string, id: number): FrameHeader[] {
  const spec = CATALOGUE.get(type)?.spec;
  const replies = spec?.replies ?? [];
  const final = new Set(spec?.final ?? []);
  const ordered = [
    ...replies.filter((reply) => !final.has(reply)),
    ...replies.filter((reply) => final.has(reply)),
  ];
  return ordered.map((reply) => ({ ...validHeader(CATALOGUE.get(reply)!), id }) as FrameHeader);
}

/** The bytes the hostile server sends for request `id` of `type`. */
function answerBytes(type: string, id: number, mutation: Mutation, seed: number): Buffer {
  let headers = declaredAnswers(type, id);
  const encode = (list: FrameHeader[]): Buffer =>
    Buffer.concat(
      list.map((header) =>
        encodeFrameToBuffer(header, header.type === 'echo' ? Buffer.from('x') : undefined),
      ),
    );
  switch (mutation) {
    case 'none':
      return encode(headers);
    case 'reorder':
      return encode(headers.reverse());
    case 'malformed': {
      const victim = headers[seed % Math.max(headers.length, 1)];
      const broken = victim && hostileHeaders(CATALOGUE.get(victim.type)!);
      if (!victim || !broken || broken.length === 0) return encode(headers);
      headers = headers.map((header) =>
        header === victim ? ({ ...broken[seed % broken.length]!.header, id } as FrameHeader) : header,
      );
      return encode(headers);
    }
    case 'foreign-type': {
      const all = [...CATALOGUE.entries()].filter(
        (entry) => entry.spec.from !== 'client' && entry.type !== 'error',
      );
      const foreign = all[seed % all.length]!;
      return encode([{ ...validHeader(foreign), id } as FrameHeader, ...headers]);
    }
    case 'wrong-id':
      return encode(headers.map((header) => ({ ...header, id: id + 1000 })));
    case 'garble': {
      const bytes = encode(headers);
      for (let i = 0; i < 4 && bytes.length > 0; i++) bytes[(seed * (i + 7)) % bytes.length] ^= 0xa5;
      return bytes;
    }
    case 'truncate': {
      const bytes = encode(headers);
      return bytes.subarray(0, Math.max(1, (seed % bytes.length) - 1));
    }
    case 'oversize': {
      // A header announcing a body over the client's 16 MiB limit: refused before it is read.
      return encodeFrameToBuffer({ type: headers[0]?.type ?? 'pong', id, size: 64 * 1024 * 1024 }).subarray(
        0,
        64,
      );
    }
    case 'stray-body':
      // A body on frames declared without one (`exit`, `put-ready`, …): refused unread.
      return Buffer.concat(headers.map((header) => encodeFrameToBuffer(header, Buffer.alloc(100, 1))));
    case 'silence':
      return Buffer.alloc(0);
  }
}

/** Writes `bytes` in pieces of at most `chunk` bytes, one write each. */
function writeSplit(socket: net.Socket, bytes: Buffer, chunk: number): void {
  for (let offset = 0; offset < bytes.length; offset += chunk) {
    if (!socket.destroyed) socket.write(bytes.subarray(offset, offset + chunk));
  }
}

/**
 * A server that follows `script` on each connection: a welcome (`auth: none`), then the hostile
 * answers of each request, then it ends the connection once `expected` requests were answered.
 */
function hostileServer(
  script: () => Script,
  expected: number,
): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => {
    const plan = script();
    const decoder = new FrameDecoder();
    let answered = 0;
    let welcomed = false;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      try {
        for (let frame = decoder.next(); frame; frame = decoder.next()) {
          const { header } = frame;
          if (!welcomed && header.type === 'hello') {
            welcomed = true;
            const welcome = {
              type: 'welcome',
              version: 1,
              server: 'hostile',
              services: ['echo', 'exec', 'files', 'chat'],
              auth: 'none',
            };
            const bytes =
              plan.welcome === 'malformed'
                ? encodeFrameToBuffer({ ...welcome, services: 'all' })
                : Buffer.concat([encodeFrameToBuffer(welcome), encodeFrameToBuffer({ type: 'ready' })]);
            writeSplit(socket, bytes, plan.welcome === 'split' ? 1 : bytes.length);
            continue;
          }
          if (CATALOGUE.get(header.type)?.spec.role !== 'request' || header.id === undefined) continue;
          const { mutation, seed } = plan.answers[answered % plan.answers.length]!;
          writeSplit(socket, answerBytes(header.type, header.id, mutation, seed), plan.chunk);
          if (++answered >= expected) socket.end();
        }
      } catch {
        socket.destroy(); // the client sent bytes that do not frame: not what this test is about
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as net.AddressInfo).port }),
    );
  });
}

const scriptArb: fc.Arbitrary<Script> = fc.record({
  welcome: fc.constantFrom('valid', 'valid', 'valid', 'malformed', 'split'),
  answers: fc.array(
    fc.record({ mutation: fc.constantFrom(...MUTATIONS), seed: fc.nat({ max: 1_000_000 }) }),
    {
      minLength: 1,
      maxLength: 8,
    },
  ),
  chunk: fc.constantFrom(1, 3, 17, 4096),
});

describe('the client against a hostile server', () => {
  let local: Awaited<ReturnType<typeof tempDir>>;
  let upload: string;
  before(async () => {
    local = await tempDir();
    upload = join(local.path, 'upload.bin');
    writeFileSync(upload, Buffer.alloc(1000, 7));
  });
  after(async () => {
    await local.cleanup();
  });

  test('every request settles with its answer or a SockitError, and nothing hangs', async () => {
    let current: Script | undefined;
    // Requests each run sends; the server ends the connection once it answered as many.
    const operations = 8;
    const { server, port } = await hostileServer(() => current!, operations);
    let runs = 0;
    try {
      await fc.assert(
        fc.asyncProperty(scriptArb, async (script) => {
          current = script;
          runs++;
          // A watchdog, not a wait: a client that hangs fails the test instead of stalling it.
          let watchdog: NodeJS.Timeout | undefined;
          const outcome = await Promise.race([
            exercise(`127.0.0.1:${port}`, runs),
            new Promise<never>((_, reject) => {
              watchdog = setTimeout(
                () => reject(new Error(`the client hung on ${JSON.stringify(script)}`)),
                HANG_WATCHDOG_MS,
              );
            }),
          ]).finally(() => clearTimeout(watchdog));
          for (const result of outcome) {
            if (result.status === 'rejected') {
              assert.ok(
                result.reason instanceof SockitError,
                `not a SockitError: ${String(result.reason)} (${JSON.stringify(script)})`,
              );
            }
          }
        }),
        { numRuns: 80, interruptAfterTimeLimit: 8_000 },
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.ok(runs >= 10, `only ${runs} scripts ran`);
  });

  /** One connection: every kind of request at once; each settles (the results), whatever the server sends. */
  async function exercise(address: string, run: number): Promise<PromiseSettledResult<unknown>[]> {
    let client: Awaited<ReturnType<typeof connect>>;
    try {
      client = await connect(address, {
        keepaliveMs: 0,
        requestTimeoutMs: 5_000,
        stateDir: local.path,
        env: {},
      });
    } catch (error) {
      return [{ status: 'rejected', reason: error }];
    }
    try {
      return await Promise.allSettled([
        client.ping(),
        client.echo('x'),
        client.exec(['true']),
        client.stat('a'),
        client.list(''),
        client.get('a', join(local.path, `got-${run}.bin`)),
        client.put(upload, `up-${run}.bin`),
        client.chat({ name: 'fuzz' }),
      ]);
    } finally {
      client.destroy();
    }
  }
});
