import type { DatagramGate } from '../forward-udp.js';
import type { ToxicSet } from './toxics.js';

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
          const start = Math.max(now, nextFree[direction]);
          nextFree[direction] = start + (payload.length / a.rate!) * 1000;
          delay += nextFree[direction] - now;
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
    if (delayed >= MAX_DELAYED) return;
    delayed++;
    setTimeout(() => {
      delayed--;
      deliver();
    }, delay).unref();
  };
}
