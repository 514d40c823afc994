import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireTool } from '../tools.js';
import { closedPort, killAll, launch, type Running, sockit, startListen, tempDir } from './helpers.js';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** True once something listens on 127.0.0.1:port (read from /proc, so no connection is used up). */
function listening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const rows = readFileSync(table, 'utf8').split('\n').slice(1);
    if (
      rows.some((row) => row.trim().split(/\s+/)[1]?.endsWith(hex) && row.trim().split(/\s+/)[3] === '0A')
    ) {
      return true;
    }
  }
  return false;
}

/** Starts a peer listener on a free port and resolves when the port accepts. */
async function peerListener(
  file: string,
  args: (port: number) => string[],
): Promise<{ peer: Running; port: number }> {
  const port = await closedPort();
  const peer = launch(file, args(port));
  while (!listening(port)) {
    if (peer.child.exitCode !== null) throw new Error(`${file} exited: ${peer.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return { peer, port };
}

/** Each side sends one line and ends its stdin; both must exit 0, each having printed the other's line. */
async function exchange(
  first: Running,
  firstSays: string,
  second: Running,
  secondSays: string,
): Promise<void> {
  first.child.stdin!.end(firstSays);
  second.child.stdin!.end(secondSays);
  const [firstExit, secondExit] = await Promise.all([first.exited, second.exited]);
  assert.equal(firstExit.code, 0, first.stderr());
  assert.equal(secondExit.code, 0, second.stderr());
  assert.equal(first.stdout().toString(), secondSays);
  assert.equal(second.stdout().toString(), firstSays);
}

describe('interop with ncat, socat and nc (OpenBSD)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    dir = await tempDir('sockit-interop-');
  });
  after(async () => {
    await killAll();
    await dir.cleanup();
  });

  it('sockit connect ↔ ncat -l: both directions, both exit 0', async (t) => {
    const ncat = requireTool(t, 'ncat');
    if (!ncat) return;
    const { peer, port } = await peerListener(ncat, (p) => ['-l', '127.0.0.1', String(p)]);
    const client = sockit(['connect', `127.0.0.1:${port}`]);
    await exchange(peer, 'from ncat\n', client, 'from sockit\n');
  });

  it('sockit connect ↔ socat TCP-LISTEN: both directions', async (t) => {
    const socat = requireTool(t, 'socat');
    if (!socat) return;
    const { peer, port } = await peerListener(socat, (p) => [
      `TCP-LISTEN:${p},bind=127.0.0.1,reuseaddr`,
      '-',
    ]);
    const client = sockit(['connect', `127.0.0.1:${port}`]);
    await exchange(peer, 'from socat\n', client, 'from sockit\n');
  });

  for (const [tool, args] of [
    ['ncat', (port: number) => ['127.0.0.1', String(port)]],
    ['nc', (port: number) => ['-N', '127.0.0.1', String(port)]],
    ['socat', (port: number) => ['-', `TCP:127.0.0.1:${port}`]],
  ] as const) {
    it(`${tool} client → sockit listen: both directions, both exit 0`, async (t) => {
      const path = requireTool(t, tool);
      if (!path) return;
      const listener = await startListen(['127.0.0.1:0']);
      const client = launch(path, args(listener.port));
      await exchange(listener, 'from sockit\n', client, `from ${tool}\n`);
    });
  }

  it('socat sends 16 MB to sockit listen byte-exact', async (t) => {
    const socat = requireTool(t, 'socat');
    if (!socat) return;
    const file = join(dir.path, 'big.bin');
    const data = randomBytes(16 * 1024 * 1024);
    writeFileSync(file, data);
    const outFile = join(dir.path, 'big.out');
    const outFd = openSync(outFile, 'w');
    try {
      const listener = await startListen(['127.0.0.1:0'], { stdin: 'ignore', stdout: outFd });
      const client = launch(socat, ['-u', `FILE:${file}`, `TCP:127.0.0.1:${listener.port}`]);
      const [clientExit, listenerExit] = await Promise.all([client.exited, listener.exited]);
      assert.equal(clientExit.code, 0, client.stderr());
      assert.equal(listenerExit.code, 0, listener.stderr());
    } finally {
      closeSync(outFd);
    }
    assert.equal(sha256(readFileSync(outFile)), sha256(data));
  });

  it('ncat --ssl client → sockit listen tls://', async (t) => {
    const ncat = requireTool(t, 'ncat');
    if (!ncat) return;
    const listener = await startListen(['tls://127.0.0.1:0', '--state-dir', join(dir.path, 'tls-server')]);
    const client = launch(ncat, ['--ssl', '127.0.0.1', String(listener.port)]);
    await exchange(listener, 'encrypted hello from sockit\n', client, 'encrypted hello from ncat\n');
  });

  it('sockit connect tls:// → ncat --ssl -l, pinning its certificate on first use', async (t) => {
    const ncat = requireTool(t, 'ncat');
    if (!ncat) return;
    const { peer, port } = await peerListener(ncat, (p) => ['--ssl', '-l', '127.0.0.1', String(p)]);
    const state = join(dir.path, 'tls-client');
    const client = sockit(['connect', `tls://127.0.0.1:${port}`, '--state-dir', state]);
    await exchange(peer, 'from ncat over TLS\n', client, 'from sockit over TLS\n');
    assert.match(client.stderr(), /pinned new TLS fingerprint/);
  });
});
