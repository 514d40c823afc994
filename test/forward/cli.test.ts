import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closedPort, dial, launch, readAll, sockit, waitForCount, waitForText } from '../raw/helpers.js';
import { requireTool } from '../tools.js';
import {
  closeTestBed,
  echoThrough,
  type Forwarding,
  type ForwardTestBed,
  forwardTestBed,
  payload,
  startForwarder,
  track,
} from './helpers.js';

const MiB = 1024 * 1024;

/** A target that reads the PROXY header (v1 line or v2 block), then answers what it parsed as JSON. */
async function proxyHeaderTarget(): Promise<{ port: number; close: () => void }> {
  const server = net.createServer((socket) => {
    socket.once('readable', () => {
      const head = socket.read() as Buffer;
      let parsed: Record<string, unknown>;
      if (head.subarray(0, 6).toString() === 'PROXY ') {
        const line = head.subarray(0, head.indexOf('\r\n')).toString().split(' ');
        parsed = {
          version: 1,
          family: line[1],
          source: line[2],
          sourcePort: Number(line[4]),
          rest: head.subarray(head.indexOf('\r\n') + 2).toString(),
        };
      } else {
        assert.equal(head.subarray(0, 12).toString('hex'), '0d0a0d0a000d0a515549540a');
        const length = head.readUInt16BE(14);
        parsed = {
          version: head[12]! >> 4,
          family: head[13] === 0x11 ? 'TCP4' : String(head[13]),
          source: [...head.subarray(16, 20)].join('.'),
          sourcePort: head.readUInt16BE(24),
          rest: head.subarray(16 + length).toString(),
        };
      }
      socket.end(JSON.stringify(parsed));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/**
 * A private CA and a certificate it signed for `name` (subjectAltName DNS:name), made by openssl
 * in `dir`: what --ca/--servername and --cert/--key are for, unlike a self-signed pin.
 */
function issueCertificate(
  openssl: string,
  dir: string,
  name: string,
): { ca: string; cert: string; key: string } {
  const file = (base: string): string => join(dir, `${name}-${base}`);
  const run = (args: string[]): void => {
    execFileSync(openssl, args, { stdio: 'ignore' });
  };
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run([
    'req',
    '-x509',
    ...curve,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=sockit test CA',
  ]);
  run(['req', ...curve, '-keyout', file('key.pem'), '-out', file('cert.csr'), '-subj', `/CN=${name}`]);
  writeFileSync(file('ext.cnf'), `subjectAltName=DNS:${name}\n`);
  run([
    'x509',
    '-req',
    '-in',
    file('cert.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    file('ext.cnf'),
    '-out',
    file('cert.pem'),
  ]);
  return { ca: file('ca.pem'), cert: file('cert.pem'), key: file('key.pem') };
}

/** A listener that never accepts, with room for one queued connection (listen(0)); prints its port. */
const DEAF_LISTENER = [
  'import socket, sys',
  "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
  'print(s.getsockname()[1], file=sys.stderr, flush=True)',
  'sys.stdin.read()',
].join('\n');

/**
 * Plain TCP forwards run in the native engine (native/forward.c) where it is built, and on Node's
 * sockets without it: the relaying cases run on both; the ones no engine serves (TLS, UDP, usage)
 * run once.
 */
const RELAYS = [
  { name: 'sockit forward', env: {}, engineIndependentToo: true },
  {
    name: 'sockit forward on Node sockets (SOCKIT_NO_NATIVE=1)',
    env: { SOCKIT_NO_NATIVE: '1' },
    engineIndependentToo: false,
  },
];

for (const relay of RELAYS)
  describe(relay.name, { timeout: 120_000 }, () => {
    let dir: ForwardTestBed['dir'];
    let env: ForwardTestBed['env'];
    let echo: ForwardTestBed['echo'];
    let plain: Forwarding;

    before(async () => {
      ({ dir, env, echo } = await forwardTestBed('sockit-forward-'));
      env = { ...env, ...relay.env };
      plain = await startForwarder('forward', ['127.0.0.1:0', `127.0.0.1:${echo.port}`], env);
    });
    after(() => closeTestBed({ dir, echo }));

    it('relays 50 parallel clients, each echoing 1 MiB byte-exact, with one log line each', async () => {
      const before = (plain.stderr().match(/up 1048576 B, down 1048576 B/g) ?? []).length;
      const sent = Array.from({ length: 50 }, () => payload(MiB));
      const back = await Promise.all(sent.map((bytes) => echoThrough(plain.port, bytes)));
      for (let i = 0; i < sent.length; i++)
        assert.ok(back[i]!.equals(sent[i]!), `client ${i} got other bytes`);
      await waitForCount(plain, /up 1048576 B, down 1048576 B, \d+ ms/, before + 50);
    });

    it('relays bulk both ways (the kernel splices each direction past 1 MiB) byte-exact, counted in the log', async () => {
      const size = 24 * MiB;
      const pattern = new RegExp(`up ${size} B, down ${size} B, \\d+ ms`, 'g');
      const before = (plain.stderr().match(pattern) ?? []).length;
      const sent = Array.from({ length: 3 }, () => payload(size));
      const back = await Promise.all(sent.map((bytes) => echoThrough(plain.port, bytes)));
      for (let i = 0; i < sent.length; i++)
        assert.ok(back[i]!.equals(sent[i]!), `client ${i} got other bytes`);
      await waitForCount(plain, pattern, before + 3);
    });

    it('carries half-close both ways: the answer after our EOF, and our bytes after the target ended', async () => {
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.once('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes`));
      });
      const early = net.createServer({ allowHalfOpen: true }, (socket) => {
        socket.write('bye first; ');
        socket.end();
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.once('end', () => {
          server.emit('late', Buffer.concat(chunks).toString());
        });
      });
      for (const s of [server, early])
        await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      const one = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${(server.address() as net.AddressInfo).port}`],
        env,
      );
      const two = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${(early.address() as net.AddressInfo).port}`],
        env,
      );
      try {
        assert.equal((await echoThrough(one.port, payload(70_000))).toString(), 'got 70000 bytes');
        const socket = await dial(two.port, '127.0.0.1', { allowHalfOpen: true });
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        await once(socket, 'end');
        assert.equal(Buffer.concat(chunks).toString(), 'bye first; ');
        const late = once(server, 'late');
        socket.end('still sending after your EOF');
        assert.deepEqual(await late, ['still sending after your EOF']);
      } finally {
        server.close();
        early.close();
        await Promise.all([one.stop(), two.stop()]);
      }
    });

    it('forwards unix → tcp and tcp → unix (socat as the unix client)', async (t) => {
      const socat = requireTool(t, 'socat');
      if (!socat) return;
      const path = join(dir.path, 'in.sock');
      const intoUnix = await startForwarder('forward', [`unix:${path}`, `127.0.0.1:${echo.port}`], env);
      const fromTcp = await startForwarder('forward', ['127.0.0.1:0', `unix:${path}`], env);
      try {
        const viaSocat = launch(socat, ['-', `UNIX-CONNECT:${path}`]);
        viaSocat.child.stdin!.end('through a unix socket\n');
        assert.equal((await viaSocat.exited).code, 0, viaSocat.stderr());
        assert.equal(viaSocat.stdout().toString(), 'through a unix socket\n');
        const bytes = payload(300_000);
        assert.ok((await echoThrough(fromTcp.port, bytes)).equals(bytes));
      } finally {
        await Promise.all([intoUnix.stop(), fromTcp.stop()]);
      }
    });

    if (relay.engineIndependentToo)
      it('terminates TLS with the kept self-signed certificate, checked by openssl s_client', async (t) => {
        const openssl = requireTool(t, 'openssl');
        if (!openssl) return;
        const tls = await startForwarder('forward', ['tls://127.0.0.1:0', `127.0.0.1:${echo.port}`], env);
        try {
          const fingerprint = /TLS fingerprint \(SHA-256\): (\S+)/.exec(tls.stderr())?.[1];
          assert.ok(fingerprint, tls.stderr());
          const client = launch(openssl, ['s_client', '-connect', `127.0.0.1:${tls.port}`, '-quiet']);
          client.child.stdin!.write('hello over tls\n');
          await waitForText(client, /hello over tls/, 'stdout');
          await client.stop();
          const pem = readFileSync(join(dir.path, 'state', 'tls', 'cert.pem'));
          assert.equal(new X509Certificate(pem).fingerprint256, fingerprint);
        } finally {
          await tls.stop();
        }
      });

    if (relay.engineIndependentToo)
      it('originates TLS to openssl s_server with a pinned fingerprint, and refuses a wrong one', async (t) => {
        const openssl = requireTool(t, 'openssl');
        if (!openssl) return;
        const cert = join(dir.path, 'cert.pem');
        const key = join(dir.path, 'key.pem');
        execFileSync(
          openssl,
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:P-256',
            '-nodes',
            '-keyout',
            key,
            '-out',
            cert,
            '-days',
            '1',
            '-subj',
            '/CN=localhost',
          ],
          { stdio: 'ignore' },
        );
        const fingerprint = new X509Certificate(readFileSync(cert)).fingerprint256;
        const port = await closedPort();
        const server = launch(openssl, [
          's_server',
          '-accept',
          String(port),
          '-cert',
          cert,
          '-key',
          key,
          '-rev',
          '-naccept',
          '2',
        ]);
        await waitForText(server, /ACCEPT/, 'stdout');
        const origin = await startForwarder(
          'forward',
          ['127.0.0.1:0', `tls://127.0.0.1:${port}`, '--fingerprint', fingerprint],
          env,
        );
        const wrong = await startForwarder(
          'forward',
          ['127.0.0.1:0', `tls://127.0.0.1:${port}`, '--fingerprint', 'AA'.repeat(32)],
          env,
        );
        try {
          const socket = await dial(origin.port);
          socket.write('sockit\n');
          const reply = await new Promise<string>((resolve) => {
            let text = '';
            socket.on('data', (chunk: Buffer) => {
              text += chunk.toString();
              if (text.length >= 'tikcos'.length) resolve(text);
            });
          });
          assert.equal(reply.trim(), 'tikcos');
          socket.destroy();
          const refused = await dial(wrong.port);
          await readAll(refused);
          await waitForText(wrong, /TLS_FINGERPRINT_CHANGED.*closed the client/);
        } finally {
          await Promise.all([origin.stop(), wrong.stop(), server.stop()]);
        }
      });

    if (relay.engineIndependentToo)
      it('terminates with --cert/--key and originates with --ca --servername to ncat --ssl, refusing the wrong name', async (t) => {
        const openssl = requireTool(t, 'openssl');
        const ncat = requireTool(t, 'ncat');
        if (!openssl || !ncat) return;
        const pki = issueCertificate(openssl, dir.path, 'sockit.test');
        const port = await closedPort();
        // ncat as a TLS echo target that presents the CA-signed certificate for sockit.test.
        const target = launch(ncat, [
          '-v',
          '--ssl',
          '--ssl-cert',
          pki.cert,
          '--ssl-key',
          pki.key,
          '-l',
          '-k',
          '--sh-exec',
          'cat',
          '127.0.0.1',
          String(port),
        ]);
        const origin = await startForwarder(
          'forward',
          ['127.0.0.1:0', `tls://127.0.0.1:${port}`, '--ca', pki.ca, '--servername', 'sockit.test'],
          env,
        );
        const misnamed = await startForwarder(
          'forward',
          ['127.0.0.1:0', `tls://127.0.0.1:${port}`, '--ca', pki.ca, '--servername', 'other.test'],
          env,
        );
        const terminating = await startForwarder(
          'forward',
          ['tls://127.0.0.1:0', `127.0.0.1:${echo.port}`, '--cert', pki.cert, '--key', pki.key],
          env,
        );
        try {
          await waitForText(target, /Listening on/);
          // No half-close here: ncat ends the whole TLS connection at the close_notify that carries
          // it. Less than a pipe holds: ncat writes to its --sh-exec child's stdin blocking, so a
          // burst larger than both pipes deadlocks it with cat writing back.
          const bytes = payload(32 * 1024);
          const socket = await dial(origin.port);
          socket.write(bytes);
          const echoed = await new Promise<Buffer>((resolve, reject) => {
            const chunks: Buffer[] = [];
            let length = 0;
            socket.on('data', (chunk: Buffer) => {
              chunks.push(chunk);
              length += chunk.length;
              if (length >= bytes.length) resolve(Buffer.concat(chunks));
            });
            socket.once('close', () => reject(new Error(`closed after ${length} of ${bytes.length} bytes`)));
          });
          socket.destroy();
          assert.ok(echoed.equals(bytes));
          await readAll(await dial(misnamed.port));
          await waitForText(
            misnamed,
            /TLS_FAILED: .*other\.test.* not in the cert.s altnames.*closed the client/,
          );
          // openssl checks the chain and the name against the CA; -verify_return_error fails otherwise.
          const client = launch(openssl, [
            's_client',
            '-connect',
            `127.0.0.1:${terminating.port}`,
            '-CAfile',
            pki.ca,
            '-verify_hostname',
            'sockit.test',
            '-verify_return_error',
            '-quiet',
          ]);
          client.child.stdin!.write('hello through the CA-signed certificate\n');
          await waitForText(client, /hello through the CA-signed certificate/, 'stdout');
          await client.stop();
        } finally {
          await Promise.all([origin.stop(), misnamed.stop(), terminating.stop(), target.stop()]);
        }
      });

    if (relay.engineIndependentToo)
      it('says in one line which --ca or --cert file it cannot read', async () => {
        for (const args of [
          ['127.0.0.1:0', 'tls://127.0.0.1:1', '--ca', join(dir.path, 'missing-ca.pem')],
          [
            'tls://127.0.0.1:0',
            '127.0.0.1:1',
            '--cert',
            join(dir.path, 'missing-cert.pem'),
            '--key',
            join(dir.path, 'missing-key.pem'),
          ],
        ]) {
          const run = sockit(['forward', ...args], { env });
          const { code } = await run.exited;
          assert.equal(code, 1);
          const lines = run.stderr().trim().split('\n');
          assert.equal(lines.length, 1, run.stderr());
          assert.match(
            lines[0]!,
            /^sockit: NOT_FOUND: cannot read (CA certificate|TLS certificate) \S+missing-(ca|cert)\.pem: /,
          );
        }
      });

    it('closes a client whose target refuses or times out, with a log line, and keeps serving', async () => {
      const silent = net.createServer(() => {}); // accepts, never speaks: a TLS handshake there never ends
      track(silent);
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const refused = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${await closedPort()}`],
        env,
      );
      const slow = await startForwarder(
        'forward',
        ['127.0.0.1:0', `tls://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, '-w', '300ms'],
        env,
      );
      try {
        for (let i = 1; i <= 2; i++) {
          const socket = await dial(refused.port);
          await readAll(socket);
          await waitForCount(
            refused,
            /CONNECT_FAILED: cannot connect to tcp:\/\/127\.0\.0\.1:\d+: connection refused.*closed the client/,
            i,
          );
        }
        const socket = await dial(slow.port);
        await readAll(socket);
        await waitForText(slow, /TIMEOUT: .*no answer within 300 ms; closed the client/);
        assert.equal(refused.child.exitCode, null, 'the forwarder is still running');
      } finally {
        silent.close();
        await Promise.all([refused.stop(), slow.stop()]);
      }
    });

    it('times out a TCP target that never answers (its accept queue is full) after -w', async (t) => {
      const python = requireTool(t, 'python3');
      if (!python) return;
      const deaf = launch(python, ['-c', DEAF_LISTENER]);
      const port = Number((await waitForText(deaf, /^(\d+)$/m))[1]);
      const filler = await dial(port); // the one place in its queue: the next SYN is dropped
      const forwarder = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${port}`, '-w', '300ms'],
        env,
      );
      try {
        await readAll(await dial(forwarder.port));
        await waitForText(
          forwarder,
          /TIMEOUT: cannot connect to tcp:\/\/127\.0\.0\.1:\d+: no answer within 300 ms; closed the client/,
        );
      } finally {
        filler.destroy();
        deaf.child.kill();
        await forwarder.stop();
      }
    });

    it('refuses peers outside --allow and inside --deny, and clients over --max-conns', async () => {
      const allow = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '--allow', '10.0.0.0/8'],
        env,
      );
      const deny = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '--deny', '127.0.0.1'],
        env,
      );
      const one = await startForwarder('forward', ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-m', '1'], env);
      try {
        for (const forwarder of [allow, deny]) {
          const socket = await dial(forwarder.port);
          socket.end('let me in');
          assert.equal((await readAll(socket)).length, 0);
          await waitForText(forwarder, /refused 127\.0\.0\.1:\d+: not allowed by --allow\/--deny/);
        }
        const first = await dial(one.port, '127.0.0.1', { allowHalfOpen: true });
        first.write('first');
        await once(first, 'data');
        const second = await dial(one.port);
        assert.equal((await readAll(second)).length, 0, 'the extra client is closed without a word');
        first.end();
        await readAll(first);
      } finally {
        await Promise.all([allow.stop(), deny.stop(), one.stop()]);
      }
    });

    it('sends PROXY v1 and v2 headers the target can parse', async () => {
      const target = await proxyHeaderTarget();
      try {
        for (const version of ['v1', 'v2']) {
          const forwarder = await startForwarder(
            'forward',
            ['127.0.0.1:0', `127.0.0.1:${target.port}`, '--proxy-protocol', version],
            env,
          );
          const socket = await dial(forwarder.port);
          const parsed = JSON.parse((await readAll(socket)).toString()) as Record<string, unknown>;
          assert.equal(parsed.version, version === 'v1' ? 1 : 2);
          assert.equal(parsed.family, 'TCP4');
          assert.equal(parsed.source, '127.0.0.1');
          assert.equal(parsed.sourcePort, socket.localPort);
          await forwarder.stop();
        }
      } finally {
        target.close();
      }
    });

    if (relay.engineIndependentToo)
      it('lets curl fetch from an HTTP server through the forward', async (t) => {
        const curl = requireTool(t, 'curl');
        if (!curl) return;
        const server = http.createServer((request, response) => response.end(`you asked for ${request.url}`));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const forwarder = await startForwarder(
          'forward',
          ['127.0.0.1:0', `127.0.0.1:${(server.address() as net.AddressInfo).port}`],
          env,
        );
        try {
          const fetched = launch(curl, ['-s', `http://127.0.0.1:${forwarder.port}/through/forward`]);
          assert.equal((await fetched.exited).code, 0);
          assert.equal(fetched.stdout().toString(), 'you asked for /through/forward');
        } finally {
          server.close();
          await forwarder.stop();
        }
      });

    it('closes an idle connection after -i and drains open ones on SIGTERM', async () => {
      const idle = await startForwarder(
        'forward',
        ['127.0.0.1:0', `127.0.0.1:${echo.port}`, '-i', '200ms'],
        env,
      );
      const socket = await dial(idle.port);
      await readAll(socket);
      await waitForText(idle, /closed: idle \(-i\)/);
      const open = await dial(idle.port, '127.0.0.1', { allowHalfOpen: true });
      open.write('before');
      await once(open, 'data');
      idle.child.kill('SIGTERM');
      await waitForText(idle, /SIGTERM: draining 1 connection/);
      const rest = readAll(open);
      open.end('after SIGTERM');
      assert.equal((await rest).toString(), 'after SIGTERM');
      assert.equal((await idle.exited).code, 0);
    });

    if (relay.engineIndependentToo)
      it('forwards udp:// with one upstream socket per client peer and an idle timeout per peer', async () => {
        const target = dgram.createSocket('udp4');
        const sources = new Set<number>();
        target.on('message', (message, info) => {
          sources.add(info.port);
          target.send(Buffer.concat([Buffer.from('echo:'), message]), info.port, info.address);
        });
        await new Promise<void>((resolve) => target.bind(0, '127.0.0.1', resolve));
        const forwarder = await startForwarder(
          'forward',
          ['udp://127.0.0.1:0', `udp://127.0.0.1:${target.address().port}`, '-i', '300ms'],
          env,
        );
        const clients = [dgram.createSocket('udp4'), dgram.createSocket('udp4')];
        try {
          const replies = await Promise.all(
            clients.map(async (client, index) => {
              const reply = once(client, 'message');
              client.send(`client ${index}`, forwarder.port, '127.0.0.1');
              return String((await reply)[0]);
            }),
          );
          assert.deepEqual(replies, ['echo:client 0', 'echo:client 1']);
          assert.equal(sources.size, 2, 'each client peer has its own upstream socket');
          await waitForCount(
            forwarder,
            /→ udp:\/\/127\.0\.0\.1:\d+: up 1 datagrams, down 1 datagrams, \d+ ms, closed: idle/,
            2,
          );
        } finally {
          for (const client of clients) client.close();
          target.close();
          await forwarder.stop();
        }
      });

    if (relay.engineIndependentToo)
      it('refuses mixed UDP and stream addresses with a usage error', async () => {
        const running = await import('../helpers.js').then(({ runCli }) =>
          runCli(['forward', 'udp://127.0.0.1:0', '127.0.0.1:1'], { env }),
        );
        assert.equal(running.code, 2);
        assert.match(running.stderr, /^sockit: USAGE: .*UDP forwards to UDP, streams to streams\n$/);
      });
  });
