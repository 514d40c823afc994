import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { waitListening } from '../../bench/lib/ports.js';
import type { SockitError } from '../../src/errors.js';
import { dialStream } from '../../src/transport/dial.js';
import { generateSelfSignedCertificate } from '../../src/transport/self-signed.js';
import { runCli, startServer, TEST_TOKEN } from '../helpers.js';
import { closedPort, launch, type Running, readAll } from '../raw/helpers.js';
import { requireTool } from '../tools.js';
import {
  closeTestBed,
  echoThrough,
  type ForwardTestBed,
  forwardTestBed,
  payload,
  socks5Server,
  startForwarder,
  track,
} from './helpers.js';

/** `ncat -l --proxy-type http`: a real HTTP CONNECT proxy. */
async function ncatHttpProxy(ncat: string): Promise<{ proxy: Running; port: number }> {
  const port = await closedPort();
  const proxy = launch(ncat, ['-l', '-k', '--proxy-type', 'http', '127.0.0.1', String(port)]);
  // ncat prints nothing when ready: wait until the port is in LISTEN state (read from /proc).
  await waitListening(port, () =>
    proxy.child.exitCode !== null ? `ncat exited: ${proxy.stderr()}` : undefined,
  );
  return { proxy, port };
}

describe('outbound --proxy (SOCKS5 and HTTP CONNECT)', { timeout: 90_000 }, () => {
  let dir: ForwardTestBed['dir'];
  let env: ForwardTestBed['env'];
  let echo: ForwardTestBed['echo'];
  before(async () => {
    ({ dir, env, echo } = await forwardTestBed('sockit-proxy-'));
  });
  after(() => closeTestBed({ dir, echo }));

  it('sockit connect --proxy socks5:// reaches the target through the proxy, host names sent as names', async () => {
    const socks = await socks5Server();
    try {
      const result = await runCli(
        ['connect', '--proxy', `socks5://127.0.0.1:${socks.port}`, `localhost:${echo.port}`],
        {
          input: 'through socks\n',
          env,
        },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'through socks\n');
      assert.deepEqual(socks.asked, [`localhost:${echo.port}`]);
    } finally {
      socks.close();
    }
  });

  it('a refusing SOCKS5 proxy is a one-line CONNECT_FAILED with its reason, exit 3', async () => {
    const socks = await socks5Server(5);
    try {
      const result = await runCli(
        ['connect', '--proxy', `socks5://127.0.0.1:${socks.port}`, `127.0.0.1:${echo.port}`],
        { env },
      );
      assert.equal(result.code, 3);
      assert.match(
        result.stderr,
        /^sockit: CONNECT_FAILED: proxy socks5:\/\/127\.0\.0\.1:\d+: it could not reach 127\.0\.0\.1:\d+: connection refused by the target\n$/,
      );
    } finally {
      socks.close();
    }
  });

  it('sockit ping (a framed client) and connect go through ncat --proxy-type http', async (t) => {
    const ncat = requireTool(t, 'ncat');
    if (!ncat) return;
    const { proxy, port } = await ncatHttpProxy(ncat);
    const server = await startServer();
    try {
      const ping = await runCli(['ping', '--json', '--proxy', `http://127.0.0.1:${port}`, server.address], {
        env: { ...env, SOCKIT_TOKEN: TEST_TOKEN },
      });
      assert.equal(ping.code, 0, ping.stderr);
      assert.equal((JSON.parse(ping.stdout) as { authenticated: boolean }).authenticated, true);
      // ncat's proxy does not carry a half-close, so the client keeps its side open
      // (--no-shutdown) and an HTTP/1.0 server ends the session.
      const web = http.createServer((request, response) => response.end(`you asked for ${request.url}`));
      await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
      const webPort = (web.address() as net.AddressInfo).port;
      const connect = await runCli(
        ['connect', '--no-shutdown', '--proxy', `http://127.0.0.1:${port}`, `127.0.0.1:${webPort}`],
        { input: 'GET /via-proxy HTTP/1.0\r\n\r\n', env },
      );
      web.close();
      assert.equal(connect.code, 0, connect.stderr);
      assert.match(connect.stdout, /^HTTP\/1\.1 200 OK\r\n[\s\S]*you asked for \/via-proxy$/);
    } finally {
      await server.stop();
      await proxy.stop();
    }
  });

  it('forward --proxy relays every client through the proxy', async () => {
    const socks = await socks5Server();
    const forwarder = await startForwarder(
      'forward',
      ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '--proxy', `socks5://127.0.0.1:${socks.port}`],
      env,
    );
    try {
      const bytes = payload(200_000);
      assert.ok((await echoThrough(forwarder.port, bytes)).equals(bytes));
      assert.deepEqual(socks.asked, [`127.0.0.1:${echo.port}`]);
      const refused = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${await closedPort()}`, '--proxy', `socks5://127.0.0.1:${socks.port}`],
        env,
      );
      const socket = net.connect({ port: refused.port, host: '127.0.0.1' });
      await readAll(socket);
      await refused.stop();
      assert.match(
        refused.stderr(),
        /CONNECT_FAILED: proxy socks5:.*connection refused by the target; closed the client/,
      );
    } finally {
      socks.close();
      await forwarder.stop();
    }
  });

  it('refuses a bad --proxy and a proxy for unix: targets as usage errors', async () => {
    const bad = await runCli(['connect', '--proxy', 'ftp://127.0.0.1:21', '127.0.0.1:1'], { env });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^sockit: USAGE: --proxy "ftp:\/\/127\.0\.0\.1:21": use socks5:\/\/HOST:PORT/);
    const unix = await runCli(['connect', '--proxy', 'socks5://127.0.0.1:1', 'unix:/tmp/x.sock'], { env });
    assert.equal(unix.code, 2);
    assert.match(unix.stderr, /--proxy reaches host:port addresses, not unix: sockets/);
  });
});

describe('dialStream through a proxy, TLS on top', { timeout: 30_000 }, () => {
  it('runs TLS end to end through SOCKS5, pinned by fingerprint, with --servername in SNI', async () => {
    const certificate = generateSelfSignedCertificate();
    let seenName: string | undefined;
    const server = tls.createServer({ cert: certificate.certPem, key: certificate.keyPem }, (socket) => {
      seenName = (socket as tls.TLSSocket & { servername?: string }).servername;
      socket.end('secret over socks');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socks = await socks5Server();
    try {
      const socket = await dialStream(
        { kind: 'tls', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
        {
          tls: { fingerprint: certificate.fingerprint256, servername: 'db.internal' },
          proxy: { kind: 'socks5', host: '127.0.0.1', port: socks.port },
        },
      );
      assert.equal((await readAll(socket)).toString(), 'secret over socks');
      assert.equal(seenName, 'db.internal');
      assert.equal(socks.asked.length, 1);
      await assert.rejects(
        dialStream(
          { kind: 'tls', host: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
          {
            tls: { fingerprint: 'AB'.repeat(32) },
            proxy: { kind: 'socks5', host: '127.0.0.1', port: socks.port },
          },
        ),
        (error: unknown) => (error as SockitError).code === 'TLS_FINGERPRINT_CHANGED',
      );
    } finally {
      socks.close();
      server.close();
    }
  });

  it('a proxy that does not answer in time is a TIMEOUT', async () => {
    const silent = net.createServer(() => {});
    track(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      await assert.rejects(
        dialStream(
          { kind: 'tcp', host: '127.0.0.1', port: 9 },
          {
            timeoutMs: 200,
            proxy: { kind: 'http', host: '127.0.0.1', port: (silent.address() as net.AddressInfo).port },
          },
        ),
        (error: unknown) => (error as SockitError).code === 'TIMEOUT',
      );
    } finally {
      silent.close();
    }
  });
});
