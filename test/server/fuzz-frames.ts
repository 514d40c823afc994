/**
 * What the fuzz test (and the hostile bench) sends: random frames with the catalogue's types and
 * fields, and a poke that sends them on a fresh connection and reports how it ended.
 */
import net from 'node:net';
import fc from 'fast-check';
import { computeProof } from '../../src/protocol/auth.js';
import { CATALOGUE } from '../../src/protocol/catalogue.js';
import { encodeFrameToBuffer } from '../../src/protocol/frame.js';
import { TEST_TOKEN } from '../token.js';

/** A watchdog, not a wait: a server that neither answers nor closes fails the test instead of hanging it. */
const HANG_WATCHDOG_MS = 10_000;

/**
 * How a poke ended: the connection lived through it (the pong came back) or the server closed
 * it; `codes` are the error codes the server sent, in order.
 */
export interface PokeOutcome {
  survived: boolean;
  codes: string[];
}

/** Sends `chunks` on a fresh connection and resolves once the server answered the final ping or closed it. */
export function poke(
  port: number,
  chunks: Buffer[],
  authenticate: boolean,
  token: string = TEST_TOKEN,
): Promise<PokeOutcome> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let welcomed = !authenticate;
    let received = Buffer.alloc(0);
    let survived = false;
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
        socket.write(encodeFrameToBuffer({ type: 'auth', proof: computeProof(token, nonce) }));
        send();
        return;
      }
      if (received.includes('"type":"pong","id":9007199254740991')) {
        survived = true;
        socket.destroy();
      }
    });
    socket.on('error', () => {}); // a reset is one of the allowed outcomes
    socket.on('close', () => {
      const codes = [...received.toString('latin1').matchAll(/"code":"([A-Z_]+)"/g)].map(
        (match) => match[1]!,
      );
      resolve({ survived, codes });
    });
    socket.setTimeout(HANG_WATCHDOG_MS, () => {
      socket.destroy();
      reject(new Error('the server neither answered nor closed within 10 s'));
    });
  });
}

const jsonValue = fc.jsonValue({ maxDepth: 2 });
/** Every frame type a client may send, from the catalogue, and one nobody declared. */
const requestTypes = [
  ...[...CATALOGUE.entries()].filter((entry) => entry.spec.from !== 'server').map((entry) => entry.type),
  'zzz',
];
/** Every field name the catalogue declares, and one it does not. */
const fieldNames = [
  ...new Set([...CATALOGUE.entries()].flatMap((entry) => Object.keys(entry.spec.fields))),
  'x',
].filter((name) => name !== 'size'); // the encoder sets size from the body
export const frameArb = fc
  .record({
    type: fc.oneof(fc.constantFrom(...requestTypes), fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/)),
    id: fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined }),
    fields: fc.dictionary(
      fc.constantFrom(...fieldNames),
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
