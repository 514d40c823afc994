import type { Socket } from 'node:net';
import tls from 'node:tls';
import {
  descriptorOf,
  type RelayedDirection,
  relayAddon,
  stopReading,
} from '../transport/descriptor-relay.js';

/**
 * Hands the direction `from` → `to` of a relay to the kernel: from now on `from`'s bytes go to
 * `to` by splice(2) through a pipe and never enter this process, which on loopback needs less
 * than half the CPU of reading and writing them. Node stops reading `from` (its other
 * direction, writes into `from`, goes on as before) and must not write to `to`.
 *
 * `onDone(undefined, bytes)` comes at `from`'s EOF once every byte reached `to`: the caller
 * then ends `to`, as it would on 'end'. `onDone(error)` on a failure (a reset).
 *
 * Changes nothing and returns `later` while bytes are buffered in Node on either side (they
 * would be overtaken: try again with the next chunk), or `never` where it cannot take over: no
 * addon (not Linux, not built), a TLS socket on either side (its bytes must be decrypted here),
 * no descriptor behind a socket, or none left for the pipe (EMFILE).
 */
export function spliceDirection(
  from: Socket,
  to: Socket,
  onDone: (error: Error | undefined, bytes: number) => void,
): RelayedDirection | 'later' | 'never' {
  // Without the addon relays copy through a reused buffer instead.
  const native = relayAddon();
  if (native === null || from instanceof tls.TLSSocket || to instanceof tls.TLSSocket) return 'never';
  if (from.readableEnded || to.writableEnded) return 'never';
  if (from.readableLength > 0 || to.writableLength > 0) return 'later';
  const source = descriptorOf(from);
  const destination = descriptorOf(to);
  if (source < 0 || destination < 0) return 'never';
  let spliced: object;
  try {
    spliced = native.start(source, destination, (code, bytes) => {
      onDone(code === null ? undefined : Object.assign(new Error(`relay: ${code}`), { code }), bytes);
    });
  } catch {
    return 'never'; // out of descriptors for the pipe: copying still works
  }
  // Node must not read `from` any more: its reads would race the kernel's moves. Nothing is
  // buffered (checked above), so nothing comes back.
  stopReading(from);
  return {
    moved: () => Math.max(0, native.moved(spliced)),
    stop: () => native.stop(spliced),
  };
}
