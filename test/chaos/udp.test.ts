import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { closeTestBed, type ForwardTestBed, forwardTestBed, startForwarder } from '../forward/helpers.js';
import { controlUrl, httpCall, roundTrip, type UdpPeer, udpPeer } from './helpers.js';

/**
 * Datagrams a test lets be on their way at once: far below what a socket's receive buffer
 * holds, so the kernel drops none and whatever goes missing went missing in the toxics.
 */
const WINDOW = 8;

/**
 * Sends `count` datagrams ("0", "1", …) to the chaos port, never more than WINDOW unheard by
 * `target` at once, and resolves with the order the target heard them in once it heard them all.
 */
function sendAll(client: UdpPeer, port: number, target: UdpPeer, count: number): Promise<number[]> {
  return new Promise((resolve) => {
    const heard: number[] = [];
    let sent = 0;
    const fill = (): void => {
      while (sent < count && sent - heard.length < WINDOW)
        client.socket.send(String(sent++), port, '127.0.0.1');
    };
    const onMessage = (message: Buffer): void => {
      heard.push(Number(message.toString()));
      if (heard.length < count) {
        fill();
        return;
      }
      target.socket.off('message', onMessage);
      resolve(heard);
    };
    target.socket.on('message', onMessage);
    fill();
  });
}

describe('sockit chaos udp://', { timeout: 120_000 }, () => {
  let bed: ForwardTestBed;
  let echo: UdpPeer;
  let client: UdpPeer;
  before(async () => {
    bed = await forwardTestBed('sockit-chaos-udp-');
    echo = await udpPeer({ echo: true });
    client = await udpPeer();
  });
  after(async () => {
    await Promise.all([client.close(), echo.close()]);
    await closeTestBed(bed);
  });

  it('loss drops every datagram, duplicate sends each twice', async () => {
    const dup = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', echo.address, '-t', 'duplicate:down:100%'],
      bed.env,
    );
    const lossy = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', echo.address, '-t', 'loss:up:100%', '-t', 'duplicate:down:100%'],
      bed.env,
    );
    try {
      const replies: string[] = [];
      const twice = new Promise<void>((resolve) => {
        const onMessage = (message: Buffer): void => {
          replies.push(String(message));
          if (replies.length < 2) return;
          client.socket.off('message', onMessage);
          resolve();
        };
        client.socket.on('message', onMessage);
      });
      client.socket.send('lost', lossy.port, '127.0.0.1');
      client.socket.send('twice', dup.port, '127.0.0.1');
      await twice;
      assert.deepEqual(replies, ['twice', 'twice']);
      await lossy.stop();
      // The lossy forwarder heard the datagram and the target never answered it: it was dropped.
      assert.match(lossy.stderr(), /up 1 datagrams, down 0 datagrams, \d+ ms, closed: shutting down/);
    } finally {
      await Promise.all([dup.stop(), lossy.stop()]);
    }
  });

  it('loss:down:50% delivers about half of 1000 datagrams', async () => {
    // On the way down the target hears every datagram, so the test goes in lockstep with it
    // (no burst the kernel could drop) and knows when the last one has passed the toxic: once
    // the toxic is removed, an "end" the target sends after them comes back behind them.
    const target = await udpPeer();
    const chaos = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', target.address, '-t', 'loss:down:50%', '--control', '127.0.0.1:0'],
      bed.env,
    );
    let peer: RemoteInfo | undefined;
    let arrived = (): void => {};
    target.socket.on('message', (message, info) => {
      peer = info;
      target.socket.send(message, info.port, info.address);
      arrived();
    });
    let delivered = 0;
    let onEnd = (): void => {};
    const ended = new Promise<void>((resolve) => {
      onEnd = resolve;
    });
    const onMessage = (message: Buffer): void => {
      const text = message.toString();
      if (text === 'end') onEnd();
      else if (/^\d+$/.test(text)) delivered++;
    };
    client.socket.on('message', onMessage);
    try {
      const total = 1000;
      for (let i = 0; i < total; i++) {
        const heard = new Promise<void>((resolve) => {
          arrived = resolve;
        });
        client.socket.send(String(i), chaos.port, '127.0.0.1');
        await heard;
      }
      assert.equal((await httpCall('DELETE', `${controlUrl(chaos)}/loss_down`)).status, 204);
      target.socket.send('end', peer!.port, peer!.address);
      await ended;
      // Binomial(1000, 0.5): a standard deviation of 16, so 350-650 is more than 9 of them.
      assert.ok(delivered >= 350 && delivered <= 650, `${delivered} of ${total} datagrams delivered`);
    } finally {
      client.socket.off('message', onMessage);
      await chaos.stop();
      await target.close();
    }
  });

  it('reorder lets later datagrams overtake held ones, and every one arrives', async () => {
    for (const toxic of ['reorder:up:delay=30ms', 'reorder:up:20%:delay=20ms']) {
      const target = await udpPeer();
      const chaos = await startForwarder(
        'chaos',
        ['udp://127.0.0.1:0', target.address, '-t', toxic],
        bed.env,
      );
      try {
        const count = 100;
        const order = await sendAll(client, chaos.port, target, count);
        assert.deepEqual(
          [...order].sort((a, b) => a - b),
          Array.from({ length: count }, (_, i) => i),
          `${toxic}: every datagram once`,
        );
        const overtaken = order.filter((value, i) => i > 0 && value < order[i - 1]!).length;
        assert.ok(overtaken > 0, `${toxic}: arrived in the order sent: ${order.join(',')}`);
      } finally {
        await chaos.stop();
        await target.close();
      }
    }
  });

  it('latency adds at least its delay to every datagram', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', echo.address, '-t', 'latency:up:150ms'],
      bed.env,
    );
    try {
      for (let i = 0; i < 3; i++) {
        const ms = await roundTrip(client.socket, chaos.port, `latency ${i}`);
        assert.ok(ms >= 150, `round trip ${ms} ms is under the 150 ms latency`);
      }
    } finally {
      await chaos.stop();
    }
  });

  it('jitter varies the delays within latency ± jitter', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', echo.address, '-t', 'latency:up:100ms:jitter=80ms'],
      bed.env,
    );
    try {
      const times: number[] = [];
      for (let i = 0; i < 30; i++) times.push(await roundTrip(client.socket, chaos.port, `jitter ${i}`));
      const shortest = Math.min(...times);
      const longest = Math.max(...times);
      const shown = times.map(Math.round).join(', ');
      assert.ok(shortest >= 20, `a round trip under latency - jitter (20 ms): ${shown}`);
      // Delays are uniform in 20-180 ms: of 30, about 7 fall under 60 ms, 40 ms short of the
      // latency, so even a loaded machine's own delays keep one under 100 ms.
      assert.ok(shortest < 100, `none under the latency, so jitter never shortened one: ${shown}`);
      assert.ok(longest - shortest >= 40, `delays hardly vary: ${shown}`);
    } finally {
      await chaos.stop();
    }
  });

  it('bandwidth spaces datagrams to its rate', async () => {
    const target = await udpPeer();
    const chaos = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', target.address, '-t', 'bandwidth:up:10KB'],
      bed.env,
    );
    try {
      const sizes: number[] = [];
      const all = new Promise<number>((resolve) =>
        target.socket.on('message', (message) => {
          sizes.push(message.length);
          if (sizes.length === 5) resolve(performance.now());
        }),
      );
      const started = performance.now();
      for (let i = 0; i < 5; i++) client.socket.send(Buffer.alloc(1000, i), chaos.port, '127.0.0.1');
      const ms = (await all) - started;
      assert.deepEqual(sizes, [1000, 1000, 1000, 1000, 1000]);
      assert.ok(ms >= 500, `5 × 1000 B at 10 kB/s took ${Math.round(ms)} ms, under 500`);
    } finally {
      await chaos.stop();
      await target.close();
    }
  });

  it('drops a datagram whose bandwidth wait is longer than a timer holds, instead of sending it at once', async () => {
    const target = await udpPeer();
    const chaos = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', target.address, '--control', '127.0.0.1:0'],
      bed.env,
    );
    try {
      const api = controlUrl(chaos);
      const heard: string[] = [];
      const arrival = (text: string): Promise<void> =>
        new Promise((resolve) => {
          const onMessage = (message: Buffer): void => {
            if (message.toString() !== text) return;
            target.socket.off('message', onMessage);
            resolve();
          };
          target.socket.on('message', onMessage);
        });
      target.socket.on('message', (message) => heard.push(message.length > 10 ? 'big' : message.toString()));
      // First the peer's upstream socket, so later datagrams meet the toxics as they are read.
      const warm = arrival('warm');
      client.socket.send('warm', chaos.port, '127.0.0.1');
      await warm;
      // 3000 bytes at 0.001 B/s would wait 3e9 ms, past the 2^31-1 a Node timer holds.
      const rate = '{"type":"bandwidth","stream":"up","attributes":{"rate":0.001}}';
      assert.equal((await httpCall('POST', api, rate)).status, 201);
      client.socket.send(Buffer.alloc(3000), chaos.port, '127.0.0.1');
      // The proxy reads that datagram (queued first) before it can read and answer the request.
      assert.equal((await httpCall('DELETE', `${api}/bandwidth_up`)).status, 204);
      const after = arrival('after');
      client.socket.send('after', chaos.port, '127.0.0.1');
      await after;
      assert.deepEqual(heard, ['warm', 'after'], 'the held-back datagram was sent after all');
      await chaos.stop();
      assert.doesNotMatch(chaos.stderr(), /TimeoutOverflowWarning/);
    } finally {
      await chaos.stop();
      await target.close();
    }
  });
});
