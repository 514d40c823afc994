/**
 * The load generator, run as its own child process: `node loadgen.js '<LoadSpec JSON>'`.
 *
 * It speaks three ways: raw bytes (echo), sockit frames, and Redis `PING`.
 *
 * It is built to cost the server's machine as little as possible per message: sockets read with
 * `onread` into one reused buffer per connection (no stream machinery, no allocation per read);
 * every request is encoded once before the run and the same bytes are written again and again,
 * on every connection (ids need only be unique per connection); framed replies are scanned for
 * `id` and `size` with `Buffer.indexOf` instead of JSON parsing, and their bodies are skipped,
 * never copied; pipelined replies that arrive together share one clock reading and
 * their follow-up requests leave in one corked write.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { computeProof, PROTOCOL_VERSION } from '../../src/protocol/auth.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrameToBuffer, type FrameHeader } from '../../src/protocol/frame.js';
import { LatencyHistogram } from './histogram.js';
import type { LoadEvent, LoadSpec } from './load-spec.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const histogram = new LatencyHistogram();
const errors: string[] = [];
let recording = false;
let stopping = false;
let completed = 0;

function emit(event: LoadEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function fail(message: string): void {
  if (errors.length < 10) errors.push(message);
}

/** The request body: lower-case letters, so an upper-casing server really has work to do. */
function makeBody(size: number): Buffer {
  const body = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) body[i] = 0x61 + (i % 26);
  return body;
}

/** Marks a reply done at `now` whose request left at `sentAt`. */
function complete(now: number, sentAt: number): void {
  if (!recording) return;
  completed++;
  histogram.record((now - sentAt) * 1000);
}

/** One socket and where its reads go; `receive` is swapped when the handshake is done. */
interface Connection {
  socket: Socket;
  /** Handles `length` bytes at the start of `buffer`, which is reused by the next read. */
  receive: (buffer: Buffer, length: number) => void;
}

const READ_BUFFER_BYTES = 64 * 1024;

// ---- raw and RESP modes: fixed-size requests out, fixed-size replies back -------------------

/**
 * One connection whose every request is `request` and every reply `replyBytes` long (an echo:
 * the same bytes; Redis: `+PONG\r\n` for `PING\r\n`): replies are counted in bytes, oldest
 * request first, never parsed.
 */
function runFixed(connection: Connection, request: Buffer, replyBytes: number): void {
  const { socket } = connection;
  const size = replyBytes;
  const sentAt = new Float64Array(spec.inFlight);
  let oldest = 0;
  let pendingBytes = 0;
  const pipelined = spec.inFlight > 1;
  connection.receive = (_buffer, length) => {
    pendingBytes += length;
    if (pendingBytes < size) return;
    const now = performance.now();
    if (pipelined) socket.cork();
    while (pendingBytes >= size) {
      pendingBytes -= size;
      complete(now, sentAt[oldest]!);
      if (!stopping) {
        sentAt[oldest] = now;
        socket.write(request);
      }
      oldest = oldest + 1 === spec.inFlight ? 0 : oldest + 1;
    }
    if (pipelined) socket.uncork();
  };
  const now = performance.now();
  for (let i = 0; i < spec.inFlight; i++) {
    sentAt[i] = now;
    socket.write(request);
  }
}

// ---- framed mode: the sockit protocol, spoken directly -------------------------------------

const ID_KEY = Buffer.from('"id":');
const SIZE_KEY = Buffer.from('"size":');
const ECHO_PREFIX = Buffer.from('{"type":"echo"');

function digitsAt(bytes: Buffer, start: number): number {
  let value = 0;
  for (let i = start; i < bytes.length; i++) {
    const digit = bytes[i]! - 0x30;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return value;
}

/** hello → welcome → auth → ready, with the project's own decoder (not on the hot path). */
function handshake(connection: Connection): Promise<void> {
  const { socket } = connection;
  return new Promise((resolve, reject) => {
    const decoder = new FrameDecoder();
    const send = (header: FrameHeader): void => {
      socket.write(encodeFrameToBuffer(header));
    };
    const finish = (error?: Error): void => {
      connection.receive = () => {};
      if (error) reject(error);
      else resolve();
    };
    /** Returns true once the handshake is over, either way. */
    const onHeader = (header: FrameHeader): boolean => {
      if (header.type === 'welcome' && header.auth === 'token') {
        if (!spec.token) {
          finish(new Error('the server wants a token; the spec has none'));
          return true;
        }
        send({ type: 'auth', proof: computeProof(spec.token, String(header.nonce)) });
        return false;
      }
      if (header.type === 'welcome' || header.type === 'ready') {
        finish(decoder.bufferedBytes > 0 ? new Error('unexpected bytes after the handshake') : undefined);
        return true;
      }
      finish(new Error(`handshake failed: ${JSON.stringify(header)}`));
      return true;
    };
    connection.receive = (buffer, length) => {
      // Copied: the decoder may keep a partial frame, and the read buffer is reused.
      decoder.push(Buffer.from(buffer.subarray(0, length)));
      for (let frame = decoder.next(); frame; frame = decoder.next()) {
        if (onHeader(frame.header)) return;
      }
    };
    send({ type: 'hello', version: PROTOCOL_VERSION, client: 'sockit-bench/loadgen' });
  });
}

const Scan = { Prefix: 0, Header: 1, Body: 2 } as const;
type Scan = (typeof Scan)[keyof typeof Scan];

/** The echo request of each id 1..inFlight, encoded once for every connection (index = id). */
function encodeRequests(body: Buffer): Buffer[] {
  const requests: Buffer[] = [];
  for (let id = 1; id <= spec.inFlight; id++) requests[id] = encodeFrameToBuffer({ type: 'echo', id }, body);
  return requests;
}

/** One framed connection with ids 1..inFlight, writing the pre-encoded `requests` again and again. */
function runFramed(connection: Connection, requests: Buffer[]): void {
  const { socket } = connection;
  const sentAt = new Float64Array(spec.inFlight + 1);
  const pipelined = spec.inFlight > 1;
  const prefix = Buffer.alloc(4);
  let prefixFill = 0;
  let headerScratch = Buffer.alloc(256);
  let headerFill = 0;
  let headerLength = 0;
  let bodyLeft = 0;
  let replyId = 0;
  let state: Scan = Scan.Prefix;

  const onReply = (now: number, id: number): void => {
    if (id < 1 || id > spec.inFlight) {
      fail(`reply for unknown id ${id}`);
      return;
    }
    complete(now, sentAt[id]!);
    if (stopping) return;
    sentAt[id] = now;
    socket.write(requests[id]!);
  };

  /** Reads id and size from a reply header; anything but an echo reply is an error. */
  const parseHeader = (header: Buffer): void => {
    if (
      header.length < ECHO_PREFIX.length ||
      header.compare(ECHO_PREFIX, 0, ECHO_PREFIX.length, 0, ECHO_PREFIX.length) !== 0
    ) {
      fail(`unexpected reply: ${header.toString('utf8')}`);
      socket.destroy();
      return;
    }
    const idAt = header.indexOf(ID_KEY);
    const sizeAt = header.indexOf(SIZE_KEY);
    replyId = idAt < 0 ? 0 : digitsAt(header, idAt + ID_KEY.length);
    bodyLeft = sizeAt < 0 ? 0 : digitsAt(header, sizeAt + SIZE_KEY.length);
  };

  connection.receive = (chunk, length) => {
    const now = performance.now();
    let at = 0;
    if (pipelined) socket.cork();
    while (at < length) {
      if (state === Scan.Prefix) {
        if (prefixFill === 0 && length - at >= 4) {
          headerLength = chunk.readUInt32BE(at);
          at += 4;
        } else {
          while (prefixFill < 4 && at < length) prefix[prefixFill++] = chunk[at++]!;
          if (prefixFill < 4) break;
          prefixFill = 0;
          headerLength = prefix.readUInt32BE(0);
        }
        state = Scan.Header;
      }
      if (state === Scan.Header) {
        if (headerFill === 0 && length - at >= headerLength) {
          parseHeader(chunk.subarray(at, at + headerLength));
          if (socket.destroyed) return;
          at += headerLength;
        } else {
          if (headerScratch.length < headerLength) headerScratch = Buffer.alloc(headerLength);
          const take = Math.min(headerLength - headerFill, length - at);
          chunk.copy(headerScratch, headerFill, at, at + take);
          headerFill += take;
          at += take;
          if (headerFill < headerLength) break;
          headerFill = 0;
          parseHeader(headerScratch.subarray(0, headerLength));
          if (socket.destroyed) return;
        }
        state = Scan.Body;
      }
      // state is Body here: skip the echoed bytes without copying them.
      const take = Math.min(bodyLeft, length - at);
      bodyLeft -= take;
      at += take;
      if (bodyLeft > 0) break;
      state = Scan.Prefix;
      onReply(now, replyId);
    }
    if (pipelined) socket.uncork();
  };
  const now = performance.now();
  for (let id = 1; id <= spec.inFlight; id++) {
    sentAt[id] = now;
    socket.write(requests[id]!);
  }
}

// ---- RESP mode: a Redis server answering PING ---------------------------------------------

const PING = Buffer.from('PING\r\n', 'latin1');
const PONG = '+PONG\r\n';

/** One PING answered with `+PONG`, so that counting reply bytes later counts PONGs. */
function checkPong(connection: Connection): Promise<void> {
  return new Promise((resolve, reject) => {
    let reply = '';
    connection.receive = (buffer, length) => {
      reply += buffer.toString('latin1', 0, length);
      if (reply.length < PONG.length) return;
      connection.receive = () => {};
      if (reply === PONG) resolve();
      else reject(new Error(`expected ${JSON.stringify(PONG)} for PING, got ${JSON.stringify(reply)}`));
    };
    connection.socket.write(PING);
  });
}

// ---- the run --------------------------------------------------------------------------------

function open(): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const connection: Connection = { socket: undefined as unknown as Socket, receive: () => {} };
    const socket = connect({
      host: spec.host,
      port: spec.port,
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
        callback: (length: number, buffer: Uint8Array) => {
          connection.receive(buffer as Buffer, length);
          return true;
        },
      },
    });
    connection.socket = socket;
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', (error) => {
        if (!stopping) fail(`socket error: ${error.message}`);
      });
      socket.on('close', () => {
        if (!stopping) fail('the server closed a connection during the run');
      });
      resolve(connection);
    });
    socket.once('error', reject);
  });
}

async function main(): Promise<void> {
  const connections = await Promise.all(Array.from({ length: spec.connections }, open));
  if (spec.mode === 'framed') await Promise.all(connections.map(handshake));
  if (spec.mode === 'resp') await Promise.all(connections.map(checkPong));
  const body = makeBody(spec.bodyBytes);
  const requests = spec.mode === 'framed' ? encodeRequests(body) : [];
  for (const connection of connections) {
    if (spec.mode === 'framed') runFramed(connection, requests);
    else if (spec.mode === 'resp') runFixed(connection, PING, PONG.length);
    else runFixed(connection, body, body.length);
  }
  await new Promise((resolve) => setTimeout(resolve, spec.warmupMs));
  emit({ event: 'start' });
  histogram.reset();
  completed = 0;
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  recording = true;
  await new Promise((resolve) => setTimeout(resolve, spec.durationMs));
  recording = false;
  stopping = true;
  const elapsedMs = performance.now() - wallStart;
  const cpu = process.cpuUsage(cpuStart);
  emit({ event: 'end' });
  emit({
    event: 'result',
    result: {
      messages: completed,
      elapsedMs,
      latency: histogram.summary(),
      cpuMs: (cpu.user + cpu.system) / 1000,
      errors,
    },
  });
  for (const { socket } of connections) socket.destroy();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    emit({ event: 'error', message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  },
);
