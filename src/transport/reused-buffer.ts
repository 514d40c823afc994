import net from 'node:net';
import tls from 'node:tls';

/** The symbols behind Node's `onread` socket option, found on a probe socket at first use. */
interface OnreadSymbols {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

let symbols: OnreadSymbols | null | undefined;

function onreadSymbols(): OnreadSymbols | null {
  if (symbols !== undefined) return symbols;
  try {
    // `onread` is documented for net.connect(); the constructor takes the same option.
    const options = {
      onread: { buffer: Buffer.alloc(1), callback: () => true },
    } as net.SocketConstructorOpts;
    const probe = new net.Socket(options);
    const named = new Map(Object.getOwnPropertySymbols(probe).map((symbol) => [symbol.description, symbol]));
    probe.destroy();
    const buffer = named.get('kBuffer');
    const callback = named.get('kBufferCb');
    const generator = named.get('kBufferGen');
    symbols = buffer && callback && generator ? { buffer, callback, generator } : null;
  } catch {
    symbols = null;
  }
  return symbols;
}

/**
 * Has an already-open socket read into one reused buffer, like Node's `onread` option does for
 * sockets it creates: `onChunk` gets a view of the bytes that is valid only during the call, so
 * it must consume them synchronously (write them with `writeSync`, copy them). Returning false
 * pauses the socket until `socket.resume()`.
 *
 * Why: a relay that gets a freshly allocated Buffer per 64 KiB read spends more on allocation,
 * page faults and garbage collection than on moving bytes; with a reused buffer the receiving
 * side of a 2 GiB relay needs about half the CPU. Node offers `onread` only when it creates the
 * socket, not for accepted ones, so this applies the same setting to an existing socket.
 *
 * Returns false, changing nothing, where that is not possible (TLS sockets, bytes already
 * buffered, a Node without these internals): the caller then reads with 'data' events. Call it
 * before the event loop turns, right after accept or connect, so no read happened yet.
 */
export function readIntoReusedBuffer(
  socket: net.Socket,
  buffer: Buffer,
  onChunk: (chunk: Buffer) => boolean,
): boolean {
  return readIntoUserBuffers(socket, buffer, null, onChunk);
}

/**
 * Like `readIntoReusedBuffer`, but every read goes into a new buffer from `next` (called after
 * each read), so `onChunk` may keep its chunk. Why: the caller chooses the memory, e.g. a view
 * with free bytes before it where a frame header can be written, so header and bytes leave as
 * one buffer (see `protocol/encoder.ts` `claimHeadroom`). Same preconditions and fallback.
 */
export function readIntoFreshBuffers(
  socket: net.Socket,
  next: () => Buffer,
  onChunk: (chunk: Buffer) => boolean,
): boolean {
  return readIntoUserBuffers(socket, next(), next, onChunk);
}

/**
 * `readIntoFreshBuffers` for a TLS socket: Node's TLS decrypts each record straight into the
 * buffer `next` gave (one `onChunk` per record, at most the buffer's length), where it would
 * otherwise allocate one per record. Unlike a plain socket, the buffer's size does not set how
 * much one system call reads. Returns false, changing nothing, when that is not possible (bytes
 * already buffered, a Node without these internals).
 */
export function readTlsIntoBuffers(
  socket: tls.TLSSocket,
  next: () => Buffer,
  onChunk: (chunk: Buffer) => boolean,
): boolean {
  return readIntoUserBuffers(socket, next(), next, onChunk, true);
}

function readIntoUserBuffers(
  socket: net.Socket,
  buffer: Buffer,
  next: (() => Buffer) | null,
  onChunk: (chunk: Buffer) => boolean,
  tlsToo = false,
): boolean {
  const found = onreadSymbols();
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } })
    ._handle;
  if (!found || (socket instanceof tls.TLSSocket && !tlsToo) || typeof handle?.useUserBuffer !== 'function')
    return false;
  if (socket.readableLength > 0 || socket.readableEnded) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[found.buffer] = buffer;
  fields[found.callback] = (bytes: number, target: Buffer) => onChunk(target.subarray(0, bytes));
  // Node calls the generator after each read and reads next into what it returns.
  fields[found.generator] = next;
  handle.useUserBuffer(buffer);
  socket.resume(); // flowing, so EOF still surfaces as 'end'
  return true;
}
