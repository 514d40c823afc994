import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { TUNNEL_ATTACH_TIMEOUT_MS } from '../../src/protocol/tunnel.js';
import { echoServer, payload } from '../forward/helpers.js';
import { runCli, TEST_TOKEN, tempDir } from '../helpers.js';
import { killAll, launch, type Running, readAll, sockit, waitForText } from '../raw/helpers.js';
import { requireTool } from '../tools.js';
import { type RunningTunnel, stalledStreams, startTunnel, startTunnelServer } from './helpers.js';

const run = promisify(execFile);
after(killAll);

/** Sends a SOCKS5 CONNECT by hand and resolves with the reply code. */
function socksConnect(port: number, request: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length === 2) socket.write(request);
      if (got.length >= 4) {
        socket.destroy();
        resolve(got[3]!);
      }
    });
    socket.once('error', reject);
    socket.write(Buffer.from([5, 1, 0]));
  });
}

const ipv4Request = (host: number[], port: number): Buffer =>
  Buffer.from([5, 1, 0, 1, ...host, port >> 8, port & 0xff]);

for (const kind of ['tcp', 'tls', 'unix'] as const) {
  describe(`tunnel -L and -R over ${kind}`, { timeout: 60_000 }, () => {
    test('20 concurrent streams, one reader stopped: the other 19 finish byte-exact, then it does too', async () => {
      const echo = await echoServer();
      const dir = await tempDir();
      const listen = kind === 'unix' ? `unix:${join(dir.path, 's.sock')}` : `${kind}://127.0.0.1:0`;
      const server = await startTunnelServer([`127.0.0.1:${echo.port}`], { remote: true, listen });
      try {
        const tunnel = await startTunnel(
          server.address,
          ['-L', `0:127.0.0.1:${echo.port}`, '-R', `0:127.0.0.1:${echo.port}`],
          server.stateDir,
        );
        for (const port of [tunnel.local[0]!, tunnel.remote[0]!]) {
          const result = await stalledStreams(port, 20, 1024 * 1024);
          assert.equal(result.others, 19, `19 streams byte-exact through port ${port}`);
          assert.equal(result.stalledEnded, false, 'the stopped stream had not finished');
          assert.equal(
            await result.resume(),
            true,
            `the stopped stream through port ${port} finishes byte-exact once read; tunnel said: ${tunnel.stderr()}`,
          );
        }
        assert.equal((await tunnel.stop()).code, 0);
      } finally {
        await server.stop();
        await echo.close();
        await dir.cleanup();
      }
    });
  });
}

describe('tunnel -D (SOCKS5) with real clients', { timeout: 60_000 }, () => {
  test('curl --socks5-hostname (name resolved by the server), ncat --proxy-type socks5, IPv6, refusals', async (t) => {
    const curl = requireTool(t, 'curl');
    const ncat = requireTool(t, 'ncat');
    if (!curl || !ncat) return;
    const http = createServer((_request, response) => response.end('hello through the tunnel\n'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const httpPort = (http.address() as net.AddressInfo).port;
    const echo = await echoServer();
    const echo6 = net.createServer((socket) => socket.end('six\n'));
    await new Promise<void>((resolve) => echo6.listen(0, '::1', resolve));
    const port6 = (echo6.address() as net.AddressInfo).port;
    const closed = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const server = await startTunnelServer([
      `localhost:${httpPort}`,
      `127.0.0.0/8:${echo.port}`,
      `[::1]:${port6}`,
      `127.0.0.1:${closed}`,
    ]);
    try {
      const tunnel = await startTunnel(server.address, ['-D', '0'], server.stateDir);
      const socks = tunnel.socks[0]!;
      const page = await run(curl, [
        '-sS',
        '--max-time',
        '10',
        '--socks5-hostname',
        `127.0.0.1:${socks}`,
        `http://localhost:${httpPort}/`,
      ]);
      assert.equal(page.stdout, 'hello through the tunnel\n');

      const bytes = payload(2 * 1024 * 1024);
      const nc = launch(
        ncat,
        ['--proxy-type', 'socks5', '--proxy', `127.0.0.1:${socks}`, '127.0.0.1', String(echo.port)],
        {},
      );
      nc.child.stdin!.end(bytes);
      await nc.exited;
      assert.ok(nc.stdout().equals(bytes), 'ncat through -D echoes 2 MiB byte-exact');

      const six = net.connect({ port: socks, host: '127.0.0.1' });
      six.write(Buffer.from([5, 1, 0]));
      six.once('data', () =>
        six.write(
          Buffer.from([
            5,
            1,
            0,
            4,
            ...Buffer.from('00000000000000000000000000000001', 'hex'),
            port6 >> 8,
            port6 & 0xff,
          ]),
        ),
      );
      const answer = await readAll(six);
      assert.equal(answer[3], 0, 'IPv6 CONNECT succeeds');
      assert.equal(answer.subarray(12).toString(), 'six\n');

      const denied = await run(curl, [
        '-sS',
        '--max-time',
        '10',
        '--socks5-hostname',
        `127.0.0.1:${socks}`,
        'http://127.0.0.2:80/',
      ]).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      assert.equal(denied?.code, 97, 'curl reports the SOCKS refusal');
      assert.equal(await socksConnect(socks, ipv4Request([10, 0, 0, 1], 80)), 0x02, 'not allowed → 0x02');
      assert.equal(await socksConnect(socks, ipv4Request([127, 0, 0, 1], closed)), 0x05, 'refused → 0x05');
      // The connection lives on after the refusals.
      const again = await run(curl, [
        '-sS',
        '--max-time',
        '10',
        '--socks5-hostname',
        `127.0.0.1:${socks}`,
        `http://localhost:${httpPort}/`,
      ]);
      assert.equal(again.stdout, 'hello through the tunnel\n');
      assert.match(tunnel.stderr(), /10\.0\.0\.1:80 is not in the server's --tunnel-allow list/);
      assert.equal((await tunnel.stop()).code, 0);
    } finally {
      await server.stop();
      await echo.close();
      http.close();
      echo6.close();
    }
  });
});

/** An echo target behind `tunnel -R`, on a server allowing `maxOpenRequests` per connection. */
interface RemoteEcho {
  tunnel: RunningTunnel;
  /** A connection to the server's `-R` listener; closed after the test if it is still open. */
  connect(): net.Socket;
  /** Closes every connection `connect` made. */
  closeAll(): void;
}

async function throughRemoteEcho(maxOpenRequests: number, body: (remote: RemoteEcho) => Promise<void>) {
  const echo = await echoServer();
  const server = await startTunnelServer(
    [`127.0.0.1:${echo.port}`],
    { remote: true },
    { limits: { maxOpenRequests } },
  );
  const open: net.Socket[] = [];
  const closeAll = (): void => {
    for (const socket of open) socket.destroy();
  };
  try {
    const tunnel = await startTunnel(server.address, ['-R', `0:127.0.0.1:${echo.port}`], server.stateDir);
    const connect = (): net.Socket => {
      const socket = net.connect({ port: tunnel.remote[0]!, host: '127.0.0.1' });
      open.push(socket);
      return socket;
    };
    await body({ tunnel, connect, closeAll });
  } finally {
    closeAll();
    await server.stop();
    await echo.close();
  }
}

/** Writes `line` and resolves with what the next read brings back. */
async function echoOf(socket: net.Socket, line: string): Promise<string> {
  socket.write(line);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString();
}

describe('tunnel -R with many connections open', { timeout: 60_000 }, () => {
  test('the cap counts connections waiting for their attach, not the attached ones: 80 stay open together', async () => {
    await throughRemoteEcho(200, async ({ tunnel, connect, closeAll }) => {
      for (let at = 0; at < 80; at++) {
        // One at a time, each echoing before the next: none is waiting when the next arrives.
        const echoed = await echoOf(connect(), `${at}\n`);
        assert.equal(echoed, `${at}\n`, `connection ${at} echoes while the others stay open`);
      }
      closeAll();
      assert.equal((await tunnel.stop()).code, 0);
    });
  });
});

describe('tunnel -R attach refused', { timeout: 30_000 }, () => {
  test('a connection whose attach the server refuses (BUSY) is closed at once, not at the attach timeout', async () => {
    // The -R listener is one open request and an attached stream another: a second stream is BUSY.
    await throughRemoteEcho(2, async ({ tunnel, connect }) => {
      const first = connect();
      assert.equal(await echoOf(first, 'first\n'), 'first\n');

      const refused = connect();
      refused.on('error', () => {});
      const started = performance.now();
      // Bounded well under the attach timeout that closed it before.
      const bound = setTimeout(() => refused.destroy(new Error('still open')), TUNNEL_ATTACH_TIMEOUT_MS / 2);
      await once(refused, 'close');
      clearTimeout(bound);
      assert.ok(
        performance.now() - started < TUNNEL_ATTACH_TIMEOUT_MS / 2,
        'closed before the bound, by the server',
      );
      await waitForText(tunnel, /BUSY|too many open requests/);

      assert.equal(await echoOf(first, 'still\n'), 'still\n');
      first.destroy();
      assert.equal((await tunnel.stop()).code, 0);
    });
  });
});

describe('tunnel refusals', { timeout: 30_000 }, () => {
  test('-L to a target outside the allow-list closes that stream with the reason; others still work', async () => {
    const echo = await echoServer();
    const server = await startTunnelServer([`127.0.0.1:${echo.port}`]);
    try {
      const tunnel = await startTunnel(
        server.address,
        ['-L', `0:127.0.0.1:${echo.port + 1}`, '-L', `0:127.0.0.1:${echo.port}`],
        server.stateDir,
      );
      const refused = await readAll(net.connect({ port: tunnel.local[0]!, host: '127.0.0.1' }));
      assert.equal(refused.length, 0);
      const bytes = payload(100_000);
      const socket = net.connect({ port: tunnel.local[1]!, host: '127.0.0.1', allowHalfOpen: true });
      socket.end(bytes);
      assert.ok((await readAll(socket)).equals(bytes));
      assert.match(tunnel.stderr(), /FORBIDDEN|is not in the server's --tunnel-allow list/);
      await tunnel.stop();
    } finally {
      await server.stop();
      await echo.close();
    }
  });

  test('-L to a unix socket at the server only when listed; -R to a local target that is down drops that connection', async () => {
    const dir = await tempDir();
    const path = join(dir.path, 'app.sock');
    const app = net.createServer((socket) => socket.end('from unix\n'));
    await new Promise<void>((resolve) => app.listen(path, resolve));
    const down = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const server = await startTunnelServer([`unix:${path}`], { remote: true });
    try {
      const tunnel = await startTunnel(
        server.address,
        ['-L', `0:unix:${path}`, '-L', `0:unix:${path}.other`, '-R', `0:127.0.0.1:${down}`],
        server.stateDir,
      );
      const answer = await readAll(net.connect({ port: tunnel.local[0]!, host: '127.0.0.1' }));
      assert.equal(answer.toString(), 'from unix\n');
      assert.equal((await readAll(net.connect({ port: tunnel.local[1]!, host: '127.0.0.1' }))).length, 0);
      assert.equal((await readAll(net.connect({ port: tunnel.remote[0]!, host: '127.0.0.1' }))).length, 0);
      assert.match(tunnel.stderr(), /app\.sock\.other is not in the server's --tunnel-allow list/);
      assert.match(tunnel.stderr(), new RegExp(`-R cannot connect to 127\\.0\\.0\\.1:${down}`));
      assert.equal(server.service.streams, 0, 'no stream is left open');
      assert.equal((await tunnel.stop()).code, 0);
    } finally {
      await server.stop();
      app.close();
      await dir.cleanup();
    }
  });

  test('-R without --tunnel-remote on the server fails with exit 1; no token fails with exit 5', async () => {
    const server = await startTunnelServer(['127.0.0.1:1']);
    try {
      const home = await tempDir();
      const { sockit } = await import('../raw/helpers.js');
      const remote = sockit(
        ['tunnel', server.address, '--state-dir', server.stateDir, '-R', '0:127.0.0.1:1'],
        {
          env: { SOCKIT_TOKEN: 'test-token-not-secret', HOME: home.path },
          stdin: 'ignore',
        },
      );
      assert.equal((await remote.exited).code, 1);
      assert.match(remote.stderr(), /FORBIDDEN: .*--tunnel-remote/);
      const anonymous = sockit(['tunnel', server.address, '--state-dir', home.path, '-L', '0:127.0.0.1:1'], {
        env: { HOME: home.path },
        stdin: 'ignore',
      });
      assert.equal((await anonymous.exited).code, 5);
      assert.match(anonymous.stderr(), /AUTH_REQUIRED/);
      await home.cleanup();
    } finally {
      await server.stop();
    }
  });
});

describe('sockit serve --tunnel-allow (spawned CLI)', { timeout: 60_000 }, () => {
  after(killAll);

  /** Starts `sockit serve --tunnel-allow 127.0.0.1:PORT` on a port of its choice; resolves with its address. */
  /** `sockit serve --tunnel-allow` to `port`, and the address it listens on; stop it when done. */
  async function serveTunnels(
    port: number,
    env: NodeJS.ProcessEnv,
  ): Promise<{ address: string; server: Running }> {
    const server = sockit(['serve', '--tunnel-allow', `127.0.0.1:${port}`, 'tcp://127.0.0.1:0'], {
      env,
      stdin: 'ignore',
    });
    try {
      return {
        address: (await waitForText(server, /^\s+(tcp:\/\/127\.0\.0\.1:\d+)$/m, 'stdout'))[1]!,
        server,
      };
    } catch (error) {
      await server.stop();
      throw error;
    }
  }

  /** Sends 64 KiB through a `-L` port and checks they come back from the echo at its end. */
  async function echoesThrough(port: number): Promise<void> {
    const bytes = payload(64 * 1024);
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.end(bytes);
    assert.ok((await readAll(socket)).equals(bytes));
  }

  test('serves tunnels to what it lists; --open tunnel is a usage error', async () => {
    const echo = await echoServer();
    const state = await tempDir('sockit-tunnel-cli-');
    let served: Awaited<ReturnType<typeof serveTunnels>> | undefined;
    try {
      const env = { ...process.env, SOCKIT_STATE_DIR: state.path };
      // The token startTunnel presents, where the server looks for its own.
      writeFileSync(join(state.path, 'token'), TEST_TOKEN, { mode: 0o600 });
      const refused = await runCli(
        ['serve', '--tunnel-allow', `127.0.0.1:${echo.port}`, '--open', 'echo,tunnel', 'tcp://127.0.0.1:0'],
        { env },
      );
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /--open tunnel: tunnels always need the token/);
      served = await serveTunnels(echo.port, env);
      const tunnel = await startTunnel(served.address, ['-L', `0:127.0.0.1:${echo.port}`], state.path);
      await echoesThrough(tunnel.local[0]!);
      await tunnel.stop();
    } finally {
      await served?.server.stop();
      await echo.close();
      await state.cleanup();
    }
  });

  test('an alias of the client config file names the server: its address and token file', async () => {
    const echo = await echoServer();
    const state = await tempDir('sockit-tunnel-cli-');
    const client = await tempDir('sockit-tunnel-alias-');
    let served: Awaited<ReturnType<typeof serveTunnels>> | undefined;
    try {
      writeFileSync(join(state.path, 'token'), TEST_TOKEN, { mode: 0o600 });
      served = await serveTunnels(echo.port, { ...process.env, SOCKIT_STATE_DIR: state.path });
      const { address } = served;
      mkdirSync(join(client.path, 'sockit'));
      writeFileSync(
        join(client.path, 'sockit', 'config'),
        `[web1]\naddress = ${address}\ntoken-file = ${join(state.path, 'token')}\n`,
      );
      // No SOCKIT_TOKEN and an empty state dir: the address and the token come from the file only.
      const tunnel = await startTunnel('web1', ['-L', `0:127.0.0.1:${echo.port}`], client.path, {
        SOCKIT_TOKEN: '',
        XDG_CONFIG_HOME: client.path,
      });
      await echoesThrough(tunnel.local[0]!);
      assert.equal((await tunnel.stop()).code, 0, tunnel.stderr());
      const ignored = sockit(
        ['tunnel', '--no-config', 'web1', '--state-dir', client.path, '-L', `0:127.0.0.1:${echo.port}`],
        { env: { XDG_CONFIG_HOME: client.path }, stdin: 'ignore' },
      );
      assert.equal((await ignored.exited).code, 2);
      assert.match(ignored.stderr(), /^sockit: USAGE: bad address "web1"/);
    } finally {
      await served?.server.stop();
      await echo.close();
      await state.cleanup();
      await client.cleanup();
    }
  });
});
