/** Event-driven waits for chat tests across servers. */
import type { ChatRoom } from '../../src/index.js';

/** Resolves once `predicate` holds, re-checking on every event of `room`. */
export function until(room: ChatRoom, predicate: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (!predicate()) return;
      room.off('message', check);
      room.off('presence', check);
      room.off('notice', check);
      resolve();
    };
    room.on('message', check);
    room.on('presence', check);
    room.on('notice', check);
    check();
  });
}
