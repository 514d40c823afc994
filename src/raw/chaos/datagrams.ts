import type { DatagramGate } from '../forward-udp.js';
import { MAX_TOXIC_MS, type ToxicSet } from './toxics.js';

/** Datagrams waiting on a delay at once; more are dropped, as a full router queue would. */
const MAX_DELAYED = 10_000;

/**
 * The chaos gate for `udp://`: each datagram, each toxic, one roll of its toxicity. loss drops
 * it, duplicate sends it twice, latency delays it (jitter reorders), reorder holds it back by
 * `delay` so later ones overtake it, bandwidth spaces datagrams to the rate.
 */
export function datagramGate(toxics: ToxicSet): DatagramGate {
  let delayed = 0;
  const nextFree = { up: 0, down: 0 };
  return (direction, payload, send) => {
    let copies = 1;
    let delay = 0;
    let free = nextFree[direction];
    for (const toxic of toxics.for(direction)) {
      if (Math.random() >= toxic.toxicity) continue;
      const a = toxic.attributes;
      switch (toxic.type) {
        case 'loss':
          return;
        case 'duplicate':
          copies = 2;
          break;
        case 'latency':
          delay += Math.max(0, a.latency! + (a.jitter! > 0 ? (Math.random() * 2 - 1) * a.jitter! : 0));
          break;
        case 'reorder':
          delay += a.delay!;
          break;
        case 'bandwidth': {
          const now = performance.now();
          free = Math.max(now, free) + (payload.length / a.rate!) * 1000;
          delay += free - now;
          break;
        }
        default:
          break;
      }
    }
    const deliver = (): void => {
      for (let i = 0; i < copies; i++) send(payload);
    };
    if (delay <= 0) {
      deliver();
      return;
    }
    // A queue that full, or a wait longer than a timer holds (a slow rate's backlog), drops it;
    // a dropped datagram takes no time on the wire, so the rate's clock moves only for a sent one.
    if (delayed >= MAX_DELAYED || delay > MAX_TOXIC_MS) return;
    nextFree[direction] = free;
    delayed++;
    setTimeout(() => {
      delayed--;
      deliver();
    }, delay).unref();
  };
}
