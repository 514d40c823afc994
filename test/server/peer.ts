import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { SockitError } from '../../src/errors.js';
import { computeProof } from '../../src/protocol/auth.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrameToBuffer, type Frame, type FrameHeader } from '../../src/protocol/frame.js';
import { TEST_TOKEN } from '../helpers.js';

/** Speaks raw frames to a server: for the tests that must send what a good client never would. */
export class RawPeer {
  readonly socket: net.Socket;
  readonly #decoder = new FrameDecoder();
  readonly #frames: Frame[] = [];
  readonly #waiters: ((frame: Frame | undefined) => void)[] = [];
  text = '';
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1');
      this.#decoder.push(chunk);
      try {
        for (let frame = this.#decoder.next(); frame; frame = this.#decoder.next()) this.#deliver(frame);
      } catch {
        // plain-text answers are read from `text`
      }
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        for (const waiter of this.#waiters.splice(0)) waiter(undefined);
        resolve();
      }),
    );
  }

  static async open(address: string): Promise<RawPeer> {
    const port = Number(address.split(':').pop());
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawPeer(socket);
  }

  /** A TLS connection to a server on loopback `port` (its self-signed certificate taken as is). */
  static async openTls(port: number): Promise<RawPeer> {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    return new RawPeer(socket);
  }

  #deliver(frame: Frame): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(frame);
    else this.#frames.push(frame);
  }

  send(header: FrameHeader, body?: Buffer): void {
    this.socket.write(encodeFrameToBuffer(header, body));
  }

  next(): Promise<Frame | undefined> {
    const frame = this.#frames.shift();
    if (frame) return Promise.resolve(frame);
    if (this.socket.destroyed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async handshake(token = TEST_TOKEN): Promise<void> {
    this.send({ type: 'hello', version: 1, client: 'raw-test' });
    const welcome = (await this.next())!;
    assert.equal(welcome.header.type, 'welcome');
    this.send({ type: 'auth', proof: computeProof(token, String(welcome.header.nonce)) });
    assert.equal((await this.next())!.header.type, 'ready');
  }
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<SockitError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SockitError, `a SockitError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}
