/** Helpers for the chaos suites: a UDP target and client, timed round trips, the control API over HTTP. */
import dgram from 'node:dgram';
import http from 'node:http';
import type { Forwarding } from '../forward/helpers.js';

/** A UDP socket on 127.0.0.1 port 0 and its address as `sockit chaos` takes it. */
export interface UdpPeer {
  socket: dgram.Socket;
  port: number;
  address: string;
  close(): Promise<void>;
}

/** Binds a UDP socket on loopback; with `echo`, it answers every datagram to its sender. */
export async function udpPeer(options: { echo?: boolean } = {}): Promise<UdpPeer> {
  const socket = dgram.createSocket('udp4');
  if (options.echo) socket.on('message', (message, info) => socket.send(message, info.port, info.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  return {
    socket,
    port,
    address: `udp://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/**
 * Sends `text` to 127.0.0.1:`port` and resolves with the milliseconds until a datagram with the
 * same text comes back; both times are taken at the events (before send, in 'message').
 */
export function roundTrip(client: dgram.Socket, port: number, text: string): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (message: Buffer): void => {
      if (message.toString() !== text) return;
      client.off('message', onMessage);
      resolve(performance.now() - started);
    };
    client.on('message', onMessage);
    const started = performance.now();
    client.send(text, port, '127.0.0.1');
  });
}

/** The control API's base URL (`http://127.0.0.1:PORT/toxics`) from a chaos started with `--control`. */
export function controlUrl(chaos: Forwarding): string {
  const match = /control API on (http:\/\/\S+\/toxics)/.exec(chaos.stderr());
  if (!match) throw new Error(`no control API line in: ${chaos.stderr()}`);
  return match[1]!;
}

/**
 * One real HTTP request with its own connection (no keep-alive agent, so nothing stays open
 * after it): resolves with the status and the body as text. `url` is sent as written.
 */
export function httpCall(
  method: string,
  url: string,
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.once('end', () =>
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      response.once('error', reject);
    });
    request.once('error', reject);
    request.end(body);
  });
}
