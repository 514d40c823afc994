import type net from 'node:net';
import { SockitError } from '../errors.js';
import type { TunnelTarget } from './tunnel.js';

/** A SOCKS5 client has this long to say what it wants (a fixed deadline: data never extends it). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** RFC 1928 reply codes we send. */
const REPLY = {
  ok: 0x00,
  failure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  refused: 0x05,
  ttlExpired: 0x06,
  commandUnsupported: 0x07,
  addressUnsupported: 0x08,
} as const;

/** The SOCKS reply for why the server could not open a stream. */
export function socksReplyFor(error: unknown): number {
  if (!(error instanceof SockitError)) return REPLY.failure;
  if (error.code === 'FORBIDDEN') return REPLY.notAllowed;
  const reason = error.details?.reason;
  if (reason === 'refused') return REPLY.refused;
  if (reason === 'unreachable') return REPLY.hostUnreachable;
  if (reason === 'timeout') return REPLY.ttlExpired;
  return REPLY.failure;
}

function reply(code: number): Buffer {
  // Bound address 0.0.0.0:0: clients do not use it for CONNECT.
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/**
 * Serves one SOCKS5 CONNECT (no authentication: the listener is loopback by default) and hands
 * the target to `connect`, which opens the tunnel stream and calls `onOpen` as it does. Bytes
 * the client sent after its request are passed on as `early`.
 */
export async function socksHandshake(
  socket: net.Socket,
  connect: (target: TunnelTarget, early: Buffer, onOpen: () => void) => Promise<void>,
): Promise<void> {
  const reader = new HandshakeReader(socket);
  const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS);
  try {
    const [version, count] = await reader.take(2);
    if (version !== 0x05) throw new SockitError('BAD_REQUEST', `not SOCKS5 (version byte ${version})`);
    const methods = await reader.take(count!);
    if (!methods.includes(0x00)) {
      socket.end(Buffer.from([0x05, 0xff]));
      throw new SockitError('BAD_REQUEST', 'the SOCKS client offers no "no authentication" method');
    }
    socket.write(Buffer.from([0x05, 0x00]));
    const [, command, , type] = await reader.take(4);
    let host: string;
    if (type === 0x01) host = [...(await reader.take(4))].join('.');
    else if (type === 0x04) host = ipv6(await reader.take(16));
    else if (type === 0x03) host = (await reader.take((await reader.take(1))[0]!)).toString('latin1');
    else {
      socket.end(reply(REPLY.addressUnsupported));
      throw new SockitError('BAD_REQUEST', `SOCKS address type ${type} is not supported`);
    }
    const port = (await reader.take(2)).readUInt16BE(0);
    if (command !== 0x01) {
      socket.end(reply(REPLY.commandUnsupported));
      throw new SockitError('UNSUPPORTED', `SOCKS command ${command} (only CONNECT is)`);
    }
    const early = reader.rest();
    clearTimeout(timer);
    reader.detach(); // the stream takes the socket over from here
    try {
      // The reply must go out before any of the target's bytes: written as the stream opens.
      await connect({ host, port }, early, () => socket.write(reply(REPLY.ok)));
    } catch (error) {
      socket.end(reply(socksReplyFor(error)));
      throw error;
    }
  } finally {
    clearTimeout(timer);
    reader.detach();
  }
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** Reads exactly N bytes at a time from a paused socket during the handshake. */
class HandshakeReader {
  readonly #socket: net.Socket;
  #buffered = Buffer.alloc(0);
  #detached = false;
  #want: { size: number; resolve: (bytes: Buffer) => void; reject: (error: Error) => void } | undefined;
  readonly #onData = (chunk: Buffer): void => {
    this.#buffered = Buffer.concat([this.#buffered, chunk]);
    if (this.#buffered.length > 1024) this.#socket.destroy(); // no handshake is this long
    this.#serve();
  };
  readonly #onEnd = (): void => this.#want?.reject(new SockitError('CLOSED', 'the SOCKS client left'));

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
    socket.resume();
  }

  take(size: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#want = { size, resolve, reject };
      this.#serve();
    });
  }

  rest(): Buffer {
    const rest = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    return rest;
  }

  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    this.#socket.pause();
  }

  #serve(): void {
    const want = this.#want;
    if (want === undefined || this.#buffered.length < want.size) return;
    this.#want = undefined;
    const bytes = this.#buffered.subarray(0, want.size);
    this.#buffered = this.#buffered.subarray(want.size);
    want.resolve(bytes);
  }
}
