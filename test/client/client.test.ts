import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Client, connect } from '../../src/client/client.js';
import { SockitError } from '../../src/errors.js';
import { serve } from '../../src/server/server.js';
import type { Service } from '../../src/server/service.js';
import { echoService } from '../../src/services/echo.js';
import { generateSelfSignedCertificate } from '../../src/transport/self-signed.js';
import { serveForFile, startServer, TEST_TOKEN, tempDir } from '../helpers.js';

function isCode(code: string) {
  return (error: unknown) => error instanceof SockitError && error.code === code;
}

describe('client requests', () => {
  let stop: () => Promise<void>;
  let client: Client;
  let cancelled = 0;
  before(async () => {
    /** Never answers; counts the cancels it sees. */
    const stall: Service = {
      name: 'stall',
      requests: {
        stall(request) {
          request.signal.addEventListener('abort', () => {
            cancelled++;
            request.finish();
          });
        },
      },
    };
    const started = await startServer({ services: [echoService(), stall] });
    stop = started.stop;
    client = await connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
  });
  after(async () => {
    await client.close();
    await stop();
  });

  test('a request timeout rejects with TIMEOUT and cancels on the server', async () => {
    await assert.rejects(client.call({ type: 'stall' }, undefined, { timeoutMs: 20 }), isCode('TIMEOUT'));
    // Frames on one connection are handled in order: the cancel was seen before this echo.
    assert.equal((await client.echo('still fine')).toString(), 'still fine');
    assert.equal(cancelled, 1);
  });

  test('an AbortSignal cancels a request', async () => {
    const controller = new AbortController();
    const pending = client.call({ type: 'stall' }, undefined, { signal: controller.signal, timeoutMs: 0 });
    controller.abort();
    await assert.rejects(pending, isCode('TIMEOUT'));
    await client.echo('sync');
    assert.equal(cancelled, 2);
  });

  test('destroying the connection fails open requests with CLOSED', async () => {
    const extra = await startServer();
    const other = await connect(extra.address, { token: TEST_TOKEN, stateDir: extra.stateDir });
    const pending = other.call({ type: 'echo' }, Buffer.alloc(8 * 1024 * 1024), { timeoutMs: 0 });
    other.destroy();
    await assert.rejects(pending, isCode('CLOSED'));
    await extra.stop();
  });
});

describe('TLS with an operator certificate', () => {
  test('a client verifies it against a CA or by fingerprint, and refuses a wrong CA', async () => {
    const dir = await tempDir();
    const cert = generateSelfSignedCertificate();
    const server = await serve({
      listen: 'tls://127.0.0.1:0',
      token: TEST_TOKEN,
      stateDir: dir.path,
      tls: { cert: cert.certPem, key: cert.keyPem },
    });
    try {
      assert.equal(server.tlsFingerprint, cert.fingerprint256);
      const viaCa = await connect(server.address, {
        token: TEST_TOKEN,
        stateDir: dir.path,
        tls: { ca: cert.certPem },
      });
      assert.equal((await viaCa.echo('ca')).toString(), 'ca');
      await viaCa.close();
      const viaPin = await connect(server.address, {
        token: TEST_TOKEN,
        stateDir: dir.path,
        tls: { fingerprint: cert.fingerprint256 },
      });
      await viaPin.close();
      const other = generateSelfSignedCertificate();
      await assert.rejects(
        connect(server.address, { token: TEST_TOKEN, stateDir: dir.path, tls: { ca: other.certPem } }),
        isCode('TLS_FAILED'),
      );
    } finally {
      await server.close(100);
      await dir.cleanup();
    }
  });
});

describe('addresses', () => {
  test('one [::] listener answers IPv4 and IPv6 clients', async () => {
    const server = await serveForFile({ listen: 'tcp://[::]:0', token: TEST_TOKEN });
    const bound = server.addresses[0]!;
    assert.ok(bound.kind === 'tcp');
    try {
      for (const host of ['127.0.0.1', '[::1]']) {
        const client = await connect(`${host}:${bound.port}`, { token: TEST_TOKEN });
        assert.equal((await client.echo(host)).toString(), host);
        await client.close();
      }
    } finally {
      await server.close(100);
    }
  });

  test('a stale Unix socket file is replaced; a live one or a plain file is refused', async () => {
    const dir = await tempDir();
    try {
      const live = await serveForFile({ listen: `unix:${dir.path}/live.sock`, token: TEST_TOKEN });
      await assert.rejects(
        serve({ listen: `unix:${dir.path}/live.sock`, token: TEST_TOKEN }),
        (error: unknown) => {
          return isCode('UNAVAILABLE')(error) && /another server/.test((error as Error).message);
        },
      );
      await live.close(100);

      // A crashed server leaves its socket file behind: bind one, then close only the fd.
      const crashed = net.createServer();
      await new Promise<void>((resolve) => crashed.listen(`${dir.path}/stale.sock`, resolve));
      (crashed as unknown as { _handle: { close(): void } })._handle.close();
      const reborn = await serveForFile({ listen: `unix:${dir.path}/stale.sock`, token: TEST_TOKEN });
      const client = await connect(reborn.address, { token: TEST_TOKEN });
      assert.equal((await client.echo('back')).toString(), 'back');
      await client.close();
      await reborn.close(100);

      writeFileSync(`${dir.path}/file`, 'not a socket');
      await assert.rejects(serve({ listen: `unix:${dir.path}/file`, token: TEST_TOKEN }), /not a socket/);
    } finally {
      await dir.cleanup();
    }
  });

  test('a port in use is UNAVAILABLE with a clear message', async () => {
    const first = await serveForFile({ listen: 'tcp://127.0.0.1:0', token: TEST_TOKEN });
    await assert.rejects(serve({ listen: first.address, token: TEST_TOKEN }), (error: unknown) => {
      return isCode('UNAVAILABLE')(error) && /address already in use/.test((error as Error).message);
    });
    await first.close(100);
  });
});
