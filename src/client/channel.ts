import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { encodeFrameToBuffer, errorFromHeader } from '../protocol/frame.js';
import { stopReading } from '../transport/descriptor-relay.js';

/** A data channel joined (docs/protocol.md "Data channels"): raw bytes from here on. */
export interface JoinedChannel {
  /** The channel's socket; Node no longer reads it (stopReading): read its descriptor. */
  readonly socket: Socket;
  /** Bytes the server sent right behind `attached`, already read: they come first. */
  readonly early: Buffer;
}

/** Largest answer to an `attach` worth waiting for: `attached` or an error frame. */
const MAX_ANSWER_BYTES = 4096;

/**
 * Joins a request's data channel on a fresh connection `dial` opens to the same server: sends
 * `attach` with the channel's key as the first frame and waits, at most `timeoutMs`, for
 * `attached`. Rejects with the server's code (AUTH_FAILED for a key that no longer works), or
 * TIMEOUT / CLOSED; the socket is destroyed then.
 */
export async function joinChannel(
  dial: () => Promise<Socket>,
  key: string,
  timeoutMs: number,
): Promise<JoinedChannel> {
  const socket = await dial();
  socket.setNoDelay(true);
  const decoder = new FrameDecoder({ maxHeaderBytes: MAX_ANSWER_BYTES, maxBodyBytes: 0 });
  return new Promise<JoinedChannel>((resolve, reject) => {
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new SockitError('TIMEOUT', `the data channel was not joined within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      decoder.push(chunk);
      let frame: ReturnType<FrameDecoder['next']>;
      try {
        frame = decoder.next();
      } catch (error) {
        fail(error as Error);
        return;
      }
      if (frame === undefined) return;
      if (frame.header.type !== 'attached') {
        fail(
          frame.header.type === 'error'
            ? errorFromHeader(frame.header, 'data channel refused')
            : new SockitError('UNSUPPORTED', `the server answered an attach with "${frame.header.type}"`),
        );
        return;
      }
      cleanup();
      // What came behind `attached` in this read, then what Node read beyond it: in that order.
      const early = Buffer.concat([decoder.takeRemaining() ?? Buffer.alloc(0), stopReading(socket)]);
      resolve({ socket, early });
    };
    const onClose = (): void => fail(new SockitError('CLOSED', 'the server closed the data channel'));
    const onError = (): void => {}; // the close that follows reports it
    function cleanup(): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      // The error listener stays: a reset of the joined channel is seen by whoever reads it.
    }
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
    socket.write(encodeFrameToBuffer({ type: 'attach', key }));
  });
}
