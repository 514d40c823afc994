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
import { runCli, serveForFile, startServer, TEST_TOKEN, tempDir, testFrames } from '../helpers.js';

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
      frames: testFrames('stall', { stall: { replies: [] } }),
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
    const reason = new Error('the user gave up');
    controller.abort(reason);
    await assert.rejects(pending, (error: SockitError) => {
      assert.equal(error.code, 'CANCELLED');
      assert.equal(error.cause, reason, 'the abort reason is kept as the cause');
      assert.match(error.message, /request cancelled: the user gave up/);
      return true;
    });
    await client.echo('sync');
    assert.equal(cancelled, 2);
  });

  test('destroying the client aborts open requests with CANCELLED', async () => {
    const extra = await startServer();
    const other = await connect(extra.address, { token: TEST_TOKEN, stateDir: extra.stateDir });
    const pending = other.call({ type: 'echo' }, Buffer.alloc(8 * 1024 * 1024), { timeoutMs: 0 });
    other.destroy();
    await assert.rejects(pending, { code: 'CANCELLED', message: /the client was destroyed/ });
    await extra.stop();
  });
});

describe('client close and destroy', () => {
  /** Holds each `gate` request until `release()` answers them all. */
  function gateService() {
    const held: (() => void)[] = [];
    let arrived!: () => void;
    const firstArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const service: Service = {
      name: 'gate',
      frames: testFrames('gate', { gate: { replies: ['gate'] } }),
      requests: {
        gate(request) {
          held.push(() => request.reply({ type: 'gate' }));
          request.signal.addEventListener('abort', () => request.finish());
          arrived();
        },
      },
    };
    return {
      service,
      firstArrived,
      release: () => {
        for (const answer of held.splice(0)) answer();
      },
    };
  }

  test('close() waits for requests in flight and refuses new ones meanwhile', async () => {
    const gate = gateService();
    const started = await startServer({ services: [echoService(), gate.service] });
    try {
      const client = await connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
      const pending = client.call({ type: 'gate' }, undefined, { timeoutMs: 0 });
      await gate.firstArrived;
      let closed = false;
      const closing = client.close().then(() => {
        closed = true;
      });
      assert.throws(() => client.open({ type: 'echo' }), { code: 'CLOSED', message: /closing/ });
      assert.equal(closed, false);
      gate.release();
      assert.equal((await pending).header.type, 'gate', 'the request in flight got its answer');
      await closing;
      assert.equal(closed, true);
    } finally {
      await started.stop();
    }
  });

  test('close({ deadlineMs }) cancels what is still open at the deadline with CANCELLED', async () => {
    const gate = gateService();
    const started = await startServer({ services: [echoService(), gate.service] });
    try {
      const client = await connect(started.address, { token: TEST_TOKEN, stateDir: started.stateDir });
      const pending = client.call({ type: 'gate' }, undefined, { timeoutMs: 0 });
      await gate.firstArrived;
      const rejected = assert.rejects(pending, { code: 'CANCELLED', message: /close deadline 50 ms/ });
      await client.close({ deadlineMs: 50 });
      await rejected;
    } finally {
      await started.stop();
    }
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

describe('credentials are read before dialling', () => {
  /** A TCP listener that counts the connections it gets and never answers. */
  async function countingListener(): Promise<{
    port: number;
    count: () => number;
    close: () => Promise<void>;
  }> {
    let connections = 0;
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      connections++;
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      count: () => connections,
      close: () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    };
  }

  test('connect() with a missing token file fails with NOT_FOUND and opens no socket', async () => {
    const listener = await countingListener();
    const dir = await tempDir();
    try {
      await assert.rejects(
        connect(`127.0.0.1:${listener.port}`, {
          tokenFile: `${dir.path}/missing`,
          stateDir: dir.path,
          env: {},
        }),
        (error: unknown) =>
          isCode('NOT_FOUND')(error) && /cannot read token file/.test((error as Error).message),
      );
      assert.equal(listener.count(), 0);
    } finally {
      await listener.close();
      await dir.cleanup();
    }
  });

  test('the CLI with a missing --token-file exits at once with code 1, without connecting', async () => {
    const listener = await countingListener();
    const dir = await tempDir();
    try {
      const started = performance.now();
      const result = await runCli(
        ['ping', `127.0.0.1:${listener.port}`, '--token-file', `${dir.path}/missing`],
        { env: { SOCKIT_STATE_DIR: dir.path, HOME: dir.path }, timeoutMs: 20_000 },
      );
      const elapsed = performance.now() - started;
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        /^sockit: NOT_FOUND: cannot read token file .*missing: no such file or directory$/m,
      );
      assert.equal(result.stderr.trim().split('\n').length, 1, 'one line, no stack');
      assert.equal(listener.count(), 0, 'no connection was made');
      // Before the fix the open socket kept the CLI alive for the 10 s connect timeout.
      assert.ok(elapsed < 5000, `exited after ${Math.round(elapsed)} ms`);
    } finally {
      await listener.close();
      await dir.cleanup();
    }
  });
});
