import { SockitError } from '../errors.js';
import { type Address, formatAddress } from '../transport/address.js';
import { connectUdp, type DatagramPeer, listenUdp, type UdpConnection } from '../transport/udp.js';
import { AccessList } from './cidr.js';
import type { Forwarder } from './forwarder.js';

/** Which way a datagram travels: client → target (`up`) or back (`down`). */
export type Direction = 'up' | 'down';

/** Hands a datagram on; chaos may drop, repeat or delay it. */
export type DatagramGate = (direction: Direction, payload: Buffer, send: (payload: Buffer) => void) => void;

export interface UdpForwardOptions {
  listen: Address;
  target: Address;
  /** Client peers with an upstream socket at once; datagrams from one more are dropped. Default 100. */
  maxConnections?: number;
  access?: AccessList | undefined;
  /** A peer silent this long (both ways) loses its upstream socket. Default 60 s. */
  idleTimeoutMs?: number | undefined;
  /** Chaos: every datagram passes here; default hands it on unchanged. */
  gate?: DatagramGate;
  say?: (line: string) => void;
}

/** How long a UDP peer keeps its upstream socket without traffic, by default. */
export const DEFAULT_UDP_IDLE_MS = 60_000;

interface Flow {
  upstream: UdpConnection;
  up: number;
  down: number;
  started: number;
  lastTraffic: number;
  timer: NodeJS.Timeout;
}

const stderrSay = (line: string): void => {
  process.stderr.write(`sockit: ${line}\n`);
};

/**
 * `sockit forward udp://… udp://…`: one listening socket; each client peer (address and port)
 * gets its own upstream socket connected to the target, so answers find their way back to the
 * right client, and loses it after `idleTimeoutMs` of silence, with one log line per peer.
 */
export async function startUdpForward(options: UdpForwardOptions): Promise<Forwarder> {
  if (options.target.kind !== 'udp') {
    throw new SockitError('USAGE', 'a udp:// listener forwards to a udp:// target');
  }
  const say = options.say ?? stderrSay;
  const access = options.access ?? new AccessList([], []);
  const idleMs = options.idleTimeoutMs || DEFAULT_UDP_IDLE_MS;
  const maxFlows = options.maxConnections ?? 100;
  const gate: DatagramGate = options.gate ?? ((_direction, payload, send) => send(payload));
  const target = formatAddress(options.target);
  const flows = new Map<string, Flow>();
  const opening = new Map<string, Promise<Flow | undefined>>();
  let closing = false;

  const endFlow = (key: string, why: string): void => {
    const flow = flows.get(key);
    if (!flow) return;
    flows.delete(key);
    clearTimeout(flow.timer);
    void flow.upstream.close();
    say(
      `${key} → ${target}: up ${flow.up} datagrams, down ${flow.down} datagrams, ${Math.round(performance.now() - flow.started)} ms, ${why}`,
    );
  };
  const watchIdle = (key: string, flow: Flow): NodeJS.Timeout =>
    setTimeout(() => {
      const quiet = performance.now() - flow.lastTraffic;
      if (quiet >= idleMs) endFlow(key, 'closed: idle');
      else flow.timer = watchIdle(key, flow);
    }, idleMs);

  const open = async (peer: DatagramPeer): Promise<Flow | undefined> => {
    const upstream = await connectUdp(options.target);
    if (closing) {
      await upstream.close();
      return undefined;
    }
    const now = performance.now();
    const flow: Flow = { upstream, up: 0, down: 0, started: now, lastTraffic: now, timer: undefined! };
    flow.timer = watchIdle(peer.text, flow);
    upstream.onDatagram((payload) => {
      flow.down++;
      flow.lastTraffic = performance.now();
      gate('down', payload, (out) => {
        listener.send(out, peer).catch(() => {});
      });
    });
    upstream.onError((error) => endFlow(peer.text, `closed: ${error.message}`));
    flows.set(peer.text, flow);
    return flow;
  };

  const listener = await listenUdp(options.listen, (payload, peer) => {
    if (closing || !access.admits(peer.address)) return;
    const forward = (flow: Flow | undefined): void => {
      if (!flow) return;
      flow.up++;
      flow.lastTraffic = performance.now();
      gate('up', payload, (out) => {
        flow.upstream.send(out).catch(() => {});
      });
    };
    const flow = flows.get(peer.text);
    if (flow) return forward(flow);
    let pending = opening.get(peer.text);
    if (!pending) {
      if (flows.size + opening.size >= maxFlows) return; // UDP has no way to say no: the datagram is dropped
      pending = open(peer).catch((error: unknown) => {
        say(`${peer.text} → ${target}: ${error instanceof Error ? error.message : String(error)}`);
        return undefined;
      });
      opening.set(peer.text, pending);
      void pending.finally(() => opening.delete(peer.text));
    }
    void pending.then(forward);
  });

  return {
    addresses: [listener.address],
    tlsFingerprint: undefined,
    engine: 'node',
    get connectionCount() {
      return flows.size;
    },
    async close() {
      closing = true;
      await Promise.all(opening.values());
      for (const key of [...flows.keys()]) endFlow(key, 'closed: shutting down');
      await listener.close();
    },
  };
}
