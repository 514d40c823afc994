import type { TLSSocket } from 'node:tls';
import { loadNative } from '../native.js';
import type { RelayedDirection } from './descriptor-relay.js';

/** `native/seal.c`: a direction of a sealed channel, encrypted or decrypted in C on Node's loop. */
interface SealAddon {
  available(): boolean;
  startSeal(src: number, dst: number, key: Buffer, iv: Buffer, onDone: SealDone, prefix?: Buffer): object;
  startOpen(src: number, dst: number, key: Buffer, iv: Buffer, onDone: SealDone, prefix?: Buffer): object;
  stop(handle: object): void;
  moved(handle: object): number;
}

type SealDone = (error: string | null, bytes: number) => void;

/** One direction's AES-128-GCM key and 12-byte IV. */
export interface DirectionKey {
  readonly key: Buffer;
  readonly iv: Buffer;
}

/** The keys of a sealed channel as one end sees them. */
export interface ChannelKeys {
  /** What this end seals with. */
  readonly send: DirectionKey;
  /** What this end opens the peer's records with. */
  readonly receive: DirectionKey;
}

/**
 * A sealed data channel as a tunnel stream uses it (docs/protocol.md "Sealed channels"): its
 * own TLS connection, which Node reads no more, and the keys its TLS session exported.
 */
export interface SealedChannel {
  /** The channel's descriptor: sealed records go out and come in here. */
  readonly fd: number;
  readonly keys: ChannelKeys;
  /** Closes it (the stream ended, or failed). */
  destroy(): void;
}

/** RFC 5705 exporter label and context of the channel keys (both ends ask for the same bytes). */
const EXPORTER_LABEL = 'EXPORTER-sockit-sealed-channel';
const EXPORTER_CONTEXT = Buffer.from('sockit sealed channel v1');
const KEY_BYTES = 16;
const IV_BYTES = 12;

let addon: SealAddon | null | undefined;

function sealAddon(): SealAddon | null {
  if (addon === undefined) {
    const loaded = loadNative<SealAddon>('sockit_seal');
    addon = loaded !== null && loaded.available() ? loaded : null;
  }
  return addon;
}

/**
 * Whether this process can seal channels: Linux, the addon built, and AES-GCM found in the
 * OpenSSL Node runs with. Without it a tunnel's bytes stay in frames.
 */
export function sealedChannelsAvailable(): boolean {
  return sealAddon() !== null;
}

/**
 * The channel's keys from its TLS session (the exporter): each direction its own key and IV,
 * known to the two ends only. `side` is which end asks: the client sends with the first key.
 */
export function channelKeys(socket: TLSSocket, side: 'client' | 'server'): ChannelKeys {
  const material = socket.exportKeyingMaterial(2 * (KEY_BYTES + IV_BYTES), EXPORTER_LABEL, EXPORTER_CONTEXT);
  const direction = (offset: number): DirectionKey => ({
    key: Buffer.from(material.subarray(offset, offset + KEY_BYTES)),
    iv: Buffer.from(material.subarray(offset + KEY_BYTES, offset + KEY_BYTES + IV_BYTES)),
  });
  const clientToServer = direction(0);
  const serverToClient = direction(KEY_BYTES + IV_BYTES);
  return side === 'client'
    ? { send: clientToServer, receive: serverToClient }
    : { send: serverToClient, receive: clientToServer };
}

/** A failure of a sealed direction, with the errno name the addon gave (EBADMSG, EPROTO, …). */
export type SealedDirectionDone = (error: NodeJS.ErrnoException | undefined, bytes: number) => void;

/**
 * Seals what `srcFd` reads (after `prefix`) into `dstFd` as records; at the source's end of file
 * writes the end record, shuts `dstFd`'s sending side and calls `onDone(undefined, bytes)`.
 */
export function sealDescriptor(
  srcFd: number,
  dstFd: number,
  key: DirectionKey,
  onDone: SealedDirectionDone,
  prefix?: Buffer,
): RelayedDirection {
  return startDirection('startSeal', srcFd, dstFd, key, onDone, prefix);
}

/**
 * Opens the records `srcFd` reads (after `prefix`) and writes their bytes to `dstFd`; calls
 * `onDone(undefined, bytes)` once the end record came and all is written (the caller ends
 * `dstFd`). A record that does not authenticate is EBADMSG, a cut stream EPROTO.
 */
export function openDescriptor(
  srcFd: number,
  dstFd: number,
  key: DirectionKey,
  onDone: SealedDirectionDone,
  prefix?: Buffer,
): RelayedDirection {
  return startDirection('startOpen', srcFd, dstFd, key, onDone, prefix);
}

function startDirection(
  how: 'startSeal' | 'startOpen',
  srcFd: number,
  dstFd: number,
  key: DirectionKey,
  onDone: SealedDirectionDone,
  prefix: Buffer | undefined,
): RelayedDirection {
  const native = sealAddon();
  if (native === null) {
    throw Object.assign(new Error('sealed channels need the native addon'), { code: 'ENOSYS' });
  }
  /** Once ended or stopped, what it moved: the addon forgets a direction that ended. */
  let final: number | undefined;
  const handle = native[how](
    srcFd,
    dstFd,
    key.key,
    key.iv,
    (code, bytes) => {
      final = bytes;
      onDone(code === null ? undefined : Object.assign(new Error(code), { code }), bytes);
    },
    prefix !== undefined && prefix.length > 0 ? prefix : undefined,
  );
  return {
    moved: () => final ?? Math.max(0, native.moved(handle)),
    stop: () => {
      if (final !== undefined) return;
      final = Math.max(0, native.moved(handle));
      native.stop(handle);
    },
  };
}
