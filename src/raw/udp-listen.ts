import type { Writable } from 'node:stream';
import { type EchoTransform, upperAscii } from '../protocol/transform.js';
import type { Address } from '../transport/address.js';
import { type DatagramPeer, listenUdp, MAX_DATAGRAM_BYTES, type UdpListener } from '../transport/udp.js';
import type { AccessList } from './cidr.js';
import { forEachLine } from './lines.js';
import type { Taps } from './session-log.js';

/** Peers whose hex-dump offsets are remembered at once. */
const MAX_TAPPED_PEERS = 10_000;

export interface UdpServeOptions {
  address: Address;
  /** Echo mode: every datagram goes back to its sender, through the transform. */
  echo?: EchoTransform | undefined;
  access?: AccessList | undefined;
  /** Relay mode: received datagrams are written here. */
  output?: Writable | undefined;
  /** Relay mode: each line read here is one datagram to the peer heard from most recently. */
  input?: NodeJS.ReadableStream | undefined;
  taps?: (peer: string) => Taps | undefined;
  notice?: (text: string) => void;
}

/** A running UDP listener in echo or relay mode. */
export interface UdpServer {
  readonly listener: UdpListener;
  readonly address: Address;
  /** Datagrams received from admitted peers. */
  readonly received: number;
  close(): Promise<void>;
}

/**
 * `sockit listen --udp`: one socket answers any number of peers. In echo mode each datagram is
 * answered to its own sender (the seeds' UDP server); in relay mode datagrams are printed and
 * stdin lines go back to whoever spoke last. Peers refused by `--allow/--deny` are ignored.
 */
export async function serveUdp(options: UdpServeOptions): Promise<UdpServer> {
  let lastPeer: DatagramPeer | undefined;
  let received = 0;
  const tapsByPeer = new Map<string, Taps | undefined>();
  const tapsFor = (peer: string): Taps | undefined => {
    if (!options.taps) return undefined;
    // One dumper per peer keeps offsets per peer; a flood of new peers must not grow it forever.
    if (tapsByPeer.size >= MAX_TAPPED_PEERS && !tapsByPeer.has(peer)) tapsByPeer.clear();
    if (!tapsByPeer.has(peer)) tapsByPeer.set(peer, options.taps(peer));
    return tapsByPeer.get(peer);
  };
  const transform = (payload: Buffer): Buffer => (options.echo === 'upper' ? upperAscii(payload) : payload);

  const listener = await listenUdp(options.address, (payload, peer) => {
    if (options.access && !options.access.admits(peer.address)) {
      options.notice?.(`ignored a datagram from ${peer.text} (not allowed)`);
      return;
    }
    received++;
    const taps = tapsFor(peer.text);
    taps?.received?.(payload);
    if (options.echo !== undefined) {
      const reply = transform(payload);
      taps?.sent?.(reply);
      listener
        .send(reply, peer)
        .catch((error: Error) => options.notice?.(`reply to ${peer.text} failed: ${error.message}`));
      return;
    }
    if (lastPeer?.text !== peer.text) options.notice?.(`datagrams from ${peer.text}`);
    lastPeer = peer;
    options.output?.write(payload);
  });

  if (options.echo === undefined && options.input) {
    forEachLine(options.input, (line) => {
      if (!lastPeer) {
        options.notice?.('no peer has sent anything yet; dropped a line of input');
        return;
      }
      if (line.length > MAX_DATAGRAM_BYTES) {
        options.notice?.(
          `dropped a line of ${line.length} bytes: over the UDP limit of ${MAX_DATAGRAM_BYTES}`,
        );
        return;
      }
      const peer = lastPeer;
      tapsFor(peer.text)?.sent?.(line);
      listener
        .send(line, peer)
        .catch((error: Error) => options.notice?.(`send to ${peer.text} failed: ${error.message}`));
    }).catch(() => {});
  }

  return {
    listener,
    address: listener.address,
    get received() {
      return received;
    },
    close: () => listener.close(),
  };
}
