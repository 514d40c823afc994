import type { Socket } from 'node:net';
import type { ConnectionLinks } from '../forward.js';
import type { DatagramGate } from '../forward-udp.js';
import { datagramGate } from './datagrams.js';
import { ToxicLink } from './link.js';
import type { ToxicSet } from './toxics.js';

export { type ControlServer, startControl } from './control.js';
export { parseToxicSpec } from './spec.js';
export { MAX_TOXIC_MS, type Toxic, ToxicSet } from './toxics.js';

/** What `sockit chaos` hands to a forwarder: toxic links for streams, a gate for datagrams. */
export function chaosHooks(toxics: ToxicSet): {
  links: (client: Socket, target: Socket) => ConnectionLinks;
  gate: DatagramGate;
} {
  return {
    links: (client, target) => ({
      upstream: new ToxicLink(client, target, 'up', toxics),
      downstream: new ToxicLink(target, client, 'down', toxics),
    }),
    gate: datagramGate(toxics),
  };
}
