/**
 * Issue 10, "Errors" and "Durations and options": every bad input is one line with a stable code
 * and the right exit status, through the real CLI against real peers on port 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Service } from '../../src/server/service.js';
import { echoService } from '../../src/services/echo.js';
import { execService } from '../../src/services/exec/index.js';
import { CLI, runCli, startServer, TEST_TOKEN, tempDir } from '../helpers.js';

/** One `sockit: CODE: message` line and nothing else: no stack, no commander noise. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.match(lines[0]!, pattern);
}

describe('bad option values are usage errors (exit 2) that name the choices', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    dir = await tempDir('sockit-options-');
    env = { SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
  });
  after(() => dir.cleanup());

  const cases: [string[], string][] = [
    [
      ['serve', '--log-level', 'loud', 'tcp://127.0.0.1:0'],
      'sockit: INVALID_OPTION: --log-level must be one of debug, info, warn, error; got "loud"',
    ],
    [
      ['serve', '--open', 'echo,bogus', 'tcp://127.0.0.1:0'],
      'sockit: INVALID_OPTION: --open: unknown "bogus" (choose from echo, chat, exec, files, tunnel)',
    ],
    [
      ['serve', '--echo', 'lower', 'tcp://127.0.0.1:0'],
      'sockit: INVALID_OPTION: --echo must be one of none, upper; got "lower"',
    ],
    [
      ['serve', '--max-connections', '0', 'tcp://127.0.0.1:0'],
      'sockit: INVALID_OPTION: --max-connections must be at least 1; got 0',
    ],
    [
      ['serve', '--idle-timeout', '5 minutes', 'tcp://127.0.0.1:0'],
      'sockit: INVALID_OPTION: --idle-timeout takes a duration such as 5s, 500ms, 2m or 1h (a bare number is seconds); got "5 minutes"',
    ],
    [
      ['serve', '--files', '.', '--files-max-size', '10Q', 'tcp://127.0.0.1:0'],
      'sockit: INVALID_OPTION: --files-max-size takes a byte size such as 1048576, 64K, 10M or 2G; got "10Q"',
    ],
    [
      ['ping', '--count', '0x10', '127.0.0.1:1'],
      'sockit: INVALID_OPTION: --count takes a whole number of at least 1; got "0x10"',
    ],
    [
      ['ping', '--count', '1e3', '127.0.0.1:1'],
      'sockit: INVALID_OPTION: --count takes a whole number of at least 1; got "1e3"',
    ],
    [
      ['ping', '--count', '', '127.0.0.1:1'],
      'sockit: INVALID_OPTION: --count takes a whole number of at least 1; got ""',
    ],
    [
      ['ping', '--connect-timeout', 'soon', '127.0.0.1:1'],
      'sockit: INVALID_OPTION: --connect-timeout takes a duration such as 5s, 500ms, 2m or 1h (a bare number is seconds); got "soon"',
    ],
    [
      ['exec', '127.0.0.1:1', '--timeout', '5 s', '--', 'true'],
      'sockit: INVALID_OPTION: --timeout takes a duration such as 5s, 500ms, 2m or 1h (a bare number is seconds); got "5 s"',
    ],
    [
      ['exec', '127.0.0.1:1', '-e', 'A=1', '--', 'true'],
      'sockit: USAGE: exec sets variables with --env A=1 (long form only: -e means --exec in listen and connect)',
    ],
    [
      ['connect', '-w', 'forever', '127.0.0.1:1'],
      'sockit: INVALID_OPTION: -w takes a duration such as 5s, 500ms, 2m or 1h (a bare number is seconds); got "forever"',
    ],
    [['listen', '-m', '0', '127.0.0.1:0'], 'sockit: INVALID_OPTION: --max-conns must be at least 1; got 0'],
    [
      ['udp', '127.0.0.1:1', 'hi', '--timeout', '-1'],
      'sockit: INVALID_OPTION: --timeout takes a duration such as 5s, 500ms, 2m or 1h (a bare number is seconds); got "-1"',
    ],
  ];
  for (const [args, line] of cases) {
    test(`sockit ${args.join(' ')}`, { timeout: 20_000 }, async () => {
      const result = await runCli(args, { env });
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr, `${line}\n`);
    });
  }
});

describe('durations: a bare number is seconds, units everywhere', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    server = await startServer({ services: [echoService(), execService({ allow: ['sleep'] })] });
    dir = await tempDir('sockit-durations-');
    env = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
  });
  after(async () => {
    await server.stop();
    await dir.cleanup();
  });

  test('exec --timeout 5 is five seconds: sleep 1 finishes', { timeout: 20_000 }, async () => {
    const result = await runCli(['exec', server.address, '--timeout', '5', '--', 'sleep', '1'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
  });

  test('exec --timeout 300ms kills sleep 5 (exit 124)', { timeout: 20_000 }, async () => {
    const started = performance.now();
    const result = await runCli(['exec', server.address, '--timeout', '300ms', '--', 'sleep', '5'], { env });
    assert.equal(result.code, 124, result.stderr);
    assert.match(result.stderr, /TIMEOUT: the command ran past its timeout and was killed/);
    assert.ok(performance.now() - started < 4000, 'killed at the timeout, not after the sleep');
  });

  test('serve --idle-timeout 300ms closes an idle connection', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--idle-timeout', '300ms', 'tcp://127.0.0.1:0'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let banner = '';
      child.stdout.setEncoding('utf8');
      while (!/127\.0\.0\.1:(\d+)/.test(banner)) banner += (await once(child.stdout, 'data'))[0];
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(banner)![1]);
      const { connect } = await import('../../src/client/client.js');
      const client = await connect(`127.0.0.1:${port}`, { stateDir: dir.path, env: {} });
      const started = performance.now();
      const [reason] = (await once(client, 'close')) as [{ code: string }];
      assert.equal(reason.code, 'TIMEOUT');
      const waited = performance.now() - started;
      assert.ok(waited >= 250 && waited < 5000, `closed after ${waited} ms`);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'close');
    }
  });
});

describe('observed failures read as one clear line with the right exit code', () => {
  let plain: Awaited<ReturnType<typeof startServer>>;
  let tlsServer: Awaited<ReturnType<typeof startServer>>;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    plain = await startServer();
    tlsServer = await startServer({ listen: 'tls://127.0.0.1:0' });
    dir = await tempDir('sockit-messages-');
    env = { SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
  });
  after(async () => {
    await plain.stop();
    await tlsServer.stop();
    await dir.cleanup();
  });

  test('tls:// against a plain server: TLS_FAILED, exit 6, with a hint', { timeout: 20_000 }, async () => {
    const address = plain.address.replace('tcp://', 'tls://');
    const result = await runCli(['ping', address], { env });
    assert.equal(result.code, 6);
    assertOneLine(
      result.stderr,
      /^sockit: TLS_FAILED: cannot connect to tls:\/\/127\.0\.0\.1:\d+: TLS handshake failed \(wrong version number\): the server does not speak TLS there \(for a plain server use tcp:\/\/HOST:PORT\)$/,
    );
  });

  test(
    'a framed command against a port that is not sockit says what it sent',
    { timeout: 20_000 },
    async () => {
      const http = net.createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
      http.listen(0, '127.0.0.1');
      await once(http, 'listening');
      try {
        const port = (http.address() as net.AddressInfo).port;
        const result = await runCli(['ping', `127.0.0.1:${port}`], { env });
        assert.equal(result.code, 1);
        assert.equal(
          result.stderr,
          `sockit: UNSUPPORTED: tcp://127.0.0.1:${port} is not a sockit server (it sent: "HTTP/1.1 400 Bad Request\\r\\n\\r\\n")\n`,
        );
      } finally {
        http.close();
      }
    },
  );

  test(
    'a host that does not resolve: CONNECT_FAILED (exit 3) for udp and connect -z',
    { timeout: 30_000 },
    async () => {
      const udp = await runCli(['udp', 'nosuch.invalid:80', 'hi'], { env });
      assert.equal(udp.code, 3);
      assertOneLine(
        udp.stderr,
        /^sockit: CONNECT_FAILED: cannot reach udp:\/\/nosuch\.invalid:80: host (not found|name lookup failed)/,
      );
      const scan = await runCli(['connect', '-z', 'nosuch.invalid:80'], { env });
      assert.equal(scan.code, 3);
      assertOneLine(
        scan.stderr,
        /^sockit: CONNECT_FAILED: cannot scan nosuch\.invalid: host (not found|name lookup failed)/,
      );
    },
  );

  test('a service the server does not run: how to start it', { timeout: 20_000 }, async () => {
    const env2 = { ...env, SOCKIT_TOKEN: TEST_TOKEN };
    const ls = await runCli(['ls', plain.address], { env: env2 });
    assert.equal(ls.code, 1);
    assert.equal(
      ls.stderr,
      'sockit: UNSUPPORTED: the server does not run files (start it with `sockit serve --files DIR`)\n',
    );
    const exec = await runCli(['exec', plain.address, '--', 'true'], { env: env2 });
    assert.match(
      exec.stderr,
      /the server does not run exec \(start it with `sockit serve --exec-allow PROGRAMS`\)/,
    );
  });

  test('serve on an address this machine does not have', { timeout: 20_000 }, async () => {
    const result = await runCli(['serve', '10.1.2.3:7000'], { env });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      'sockit: UNAVAILABLE: cannot listen on tcp://10.1.2.3:7000: address not available on this machine (no interface has that IP)\n',
    );
  });

  test('a state dir that cannot be created', { timeout: 20_000 }, async () => {
    const file = join(dir.path, 'a-file');
    writeFileSync(file, '');
    const result = await runCli(['serve', '--state-dir', join(file, 'state'), 'tcp://127.0.0.1:0'], { env });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `sockit: NOT_FOUND: cannot read token file ${join(file, 'state', 'token')}: a part of the path is a file, not a directory\n`,
    );
  });

  test('a bad PEM in --cert names the file (exit 2)', { timeout: 20_000 }, async () => {
    const cert = join(dir.path, 'bad-cert.pem');
    const key = join(dir.path, 'bad-key.pem');
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    writeFileSync(key, 'nope');
    for (const command of ['serve', 'listen']) {
      const result = await runCli([command, '--cert', cert, '--key', key, 'tls://127.0.0.1:0'], { env });
      assert.equal(result.code, 2, result.stderr);
      assertOneLine(
        result.stderr,
        new RegExp(`^sockit: INVALID_OPTION: ${cert} is not a PEM certificate \\(`),
      );
    }
    const missing = await runCli(
      ['serve', '--cert', join(dir.path, 'none.pem'), '--key', key, 'tls://127.0.0.1:0'],
      {
        env,
      },
    );
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      `sockit: NOT_FOUND: cannot read TLS certificate ${join(dir.path, 'none.pem')}: no such file or directory\n`,
    );
  });

  test('file-path errors are file errors, not socket errors', { timeout: 20_000 }, async () => {
    const blocker = join(dir.path, 'blocker');
    writeFileSync(blocker, '');
    const log = join(blocker, 'session.log');
    const listen = await runCli(['listen', '-o', log, '127.0.0.1:0'], { env, input: '' });
    assert.equal(listen.code, 1);
    assert.equal(
      listen.stderr,
      `sockit: NOT_FOUND: cannot open session log ${log}: a part of the path is a file, not a directory\n`,
    );
    const knownHosts = join(blocker, 'known_hosts');
    const ping = await runCli(['ping', tlsServer.address, '--known-hosts', knownHosts], { env });
    assert.equal(ping.code, 1);
    assert.equal(
      ping.stderr,
      `sockit: NOT_FOUND: cannot read known-hosts file ${knownHosts}: a part of the path is a file, not a directory\n`,
    );
  });

  test('an explicit --token-file wins over $SOCKIT_TOKEN', { timeout: 20_000 }, async () => {
    const tokenFile = join(dir.path, 'token');
    writeFileSync(tokenFile, `${TEST_TOKEN}\n`);
    const result = await runCli(['ping', plain.address, '--token-file', tokenFile, '--json'], {
      env: { ...env, SOCKIT_TOKEN: 'not-the-token' },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).authenticated, true);
    // Without the flag, the environment is used (and is wrong here).
    const wrong = await runCli(['ping', plain.address], { env: { ...env, SOCKIT_TOKEN: 'not-the-token' } });
    assert.equal(wrong.code, 5);
  });
});

describe('Ctrl-C during put is CANCELLED, exit 130', () => {
  test('the transfer stops and the message says how to resume', { timeout: 20_000 }, async () => {
    let putArrived!: () => void;
    const arrived = new Promise<void>((resolve) => {
      putArrived = resolve;
    });
    /** A files service that never answers a put: the CLI is mid-transfer when Ctrl-C comes. */
    const holding: Service = {
      name: 'files',
      requests: {
        stat: (request) => request.fail('NOT_FOUND', 'no such file'),
        put(request) {
          request.signal.addEventListener('abort', () => request.finish());
          putArrived();
        },
      },
    };
    const server = await startServer({ services: [echoService(), holding] });
    const dir = await tempDir('sockit-cancel-');
    try {
      const local = join(dir.path, 'data.bin');
      writeFileSync(local, Buffer.alloc(1024, 1));
      const child = spawn(process.execPath, [CLI, 'put', local, server.address, 'data.bin'], {
        env: { ...process.env, SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path, HOME: dir.path },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      await arrived;
      child.kill('SIGINT');
      const [code] = await once(child, 'close');
      assert.equal(code, 130, stderr);
      assert.match(
        stderr,
        /sockit: CANCELLED: interrupted \(SIGINT\); what arrived is kept: run the same command with --resume to finish the upload\n$/,
      );
    } finally {
      await server.stop();
      await dir.cleanup();
    }
  });
});
