/** Ports for peers started by the benchmarks (ncat, socat, rsync): found free, waited on. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port on 127.0.0.1 that nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether 127.0.0.1:port is in LISTEN state, read from /proc so no connection is spent on asking. */
export function listening(port: number): boolean {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = row.trim().split(/\s+/);
      if (fields[1]?.endsWith(suffix) && fields[3] === '0A') return true;
    }
  }
  return false;
}

/**
 * Waits until something listens on the port: a peer that prints nothing when ready. `failed`
 * says why to give up early (the peer exited); after 10 s it gives up anyway.
 */
export async function waitListening(
  port: number,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!listening(port)) {
    const reason = failed();
    if (reason !== undefined) throw new Error(reason);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
