import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { parseToxicSpec, ToxicSet } from '../../src/raw/chaos/index.js';
import { ToxicLink } from '../../src/raw/chaos/link.js';
import { dial, readBytes } from '../raw/helpers.js';

describe('ToxicLink', { timeout: 30_000 }, () => {
  it("slicer's delay spaces pieces of separate writes too, as toxiproxy sleeps after every slice", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = once(server, 'connection') as Promise<[net.Socket]>;
    const reader = await dial((server.address() as net.AddressInfo).port);
    const [writer] = await accepted;
    const toxics = new ToxicSet(false);
    toxics.add(parseToxicSpec('slicer:down:100:delay=20ms'));
    // The link writes into `writer`; `reader` is its peer (and stands in for the source).
    const link = new ToxicLink(reader, writer, 'down', toxics);
    try {
      const got = readBytes(reader, 100);
      const started = performance.now();
      // Ten chunks, each smaller than a slice: ten pieces, each 20 ms after the one before.
      const chunks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(10, i));
      for (const chunk of chunks) link.write(chunk);
      const bytes = await got;
      const ms = performance.now() - started;
      assert.ok(bytes.equals(Buffer.concat(chunks)));
      // A Node timer counts from the loop's cached clock, which may be up to a millisecond behind
      // performance.now(): each of the nine gaps may look that much short.
      assert.ok(ms >= 9 * 19, `ten pieces 20 ms apart came in ${Math.round(ms)} ms`);
    } finally {
      reader.destroy();
      writer.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
