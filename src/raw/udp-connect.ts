import type { Writable } from 'node:stream';
import { SockitError } from '../errors.js';
import type { Address } from '../transport/address.js';
import { assertDatagramSize, connectUdp } from '../transport/udp.js';
import { forEachLine } from './lines.js';
import type { RelayResult } from './relay.js';
import type { Taps } from './session-log.js';

export interface UdpSessionOptions {
  address: Address;
  input: NodeJS.ReadableStream;
  output: Writable;
  /** After input EOF, how long to wait in silence for outstanding replies. Default 1000 ms. */
  lingerMs?: number;
  /** End the session after this long without a datagram in either direction. */
  idleTimeoutMs?: number;
  taps?: Taps | undefined;
}

/**
 * `sockit connect --udp`: each input line (newline included, as nc sends it) is one datagram;
 * every reply is written to the output as it arrives. After input EOF the session waits until
 * every datagram was answered, or `lingerMs` pass without a reply (UDP may lose either).
 * A line over the datagram limit ends the session with TOO_LARGE before anything is sent.
 */
export async function udpSession(options: UdpSessionOptions): Promise<RelayResult> {
  const connection = await connectUdp(options.address);
  const lingerMs = options.lingerMs ?? 1000;
  let sentDatagrams = 0;
  let replies = 0;
  let sent = 0;
  let received = 0;
  let inputDone = false;
  let failure: SockitError | undefined;
  let quietTimer: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const fail = (error: SockitError): void => {
    failure ??= error;
    finish();
  };
  const touch = (): void => {
    if (!options.idleTimeoutMs) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(
      () => fail(new SockitError('TIMEOUT', `no datagram for ${options.idleTimeoutMs} ms (-i)`)),
      options.idleTimeoutMs,
    );
  };
  const finishIfAnswered = (): void => {
    if (!inputDone) return;
    clearTimeout(quietTimer);
    if (replies >= sentDatagrams) {
      finish();
      return;
    }
    quietTimer = setTimeout(finish, lingerMs);
  };

  connection.onError(fail);
  connection.onDatagram((payload) => {
    replies++;
    received += payload.length;
    touch();
    options.taps?.received?.(payload);
    options.output.write(payload);
    finishIfAnswered();
  });
  touch();
  forEachLine(options.input, (line) => {
    if (failure) return;
    try {
      assertDatagramSize(line.length);
    } catch (error) {
      fail(error as SockitError);
      return;
    }
    sentDatagrams++;
    sent += line.length;
    touch();
    options.taps?.sent?.(line);
    connection.send(line).catch((error: SockitError) => fail(error));
  }).then(
    () => {
      inputDone = true;
      finishIfAnswered();
    },
    () => {
      inputDone = true;
      finishIfAnswered();
    },
  );

  await finished;
  clearTimeout(quietTimer);
  clearTimeout(idleTimer);
  await connection.close();
  return { sent, received, error: failure };
}
