/**
 * `sockit serve fd:3` and systemd socket activation: the test opens the listening sockets,
 * spawns the server with them as fd 3 and 4 (and systemd's variables), and clients are served.
 */
import assert from 'node:assert/strict';
import { closeSync, linkSync, openSync, readlinkSync, renameSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '../../src/index.js';
import { resolveActivated, takeSocketActivation } from '../../src/transport/systemd.js';
import { sharedState } from '../bus/helpers.js';
import { CLI, runCli, TEST_TOKEN } from '../helpers.js';
import { killAll, launch, type Running, sockit, waitForText } from '../raw/helpers.js';

/**
 * A listening socket made by the test, its descriptor to hand to a child, and its address.
 * `handOver()` closes the test's own copy once the child has one: otherwise the test process
 * would accept (and ignore) some of the connections meant for the server.
 */
async function listening(
  options: net.ListenOptions,
): Promise<{ fd: number; address: string; link: string; handOver(): void }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(options, resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const bound = server.address();
  return {
    fd,
    address: typeof bound === 'string' ? `unix:${bound}` : `tcp://127.0.0.1:${bound!.port}`,
    link: readlinkSync(`/proc/self/fd/${fd}`),
    handOver() {
      // Closing a Unix listener unlinks its path (libuv): a hard link keeps the name for the child.
      if (typeof bound === 'string') linkSync(bound, `${bound}.kept`);
      server.close();
      if (typeof bound === 'string') renameSync(`${bound}.kept`, bound);
    },
  };
}

/** Every `host:port` / `unix:` line of a serve banner. */
async function bannerAddresses(running: Running, count = 1): Promise<string[]> {
  const pattern = new RegExp(`on:\\n${'\\s+(\\S+)\\n'.repeat(count)}`);
  const match = await waitForText(running, pattern, 'stdout');
  return match.slice(1, 1 + count);
}

describe('sockit serve on an inherited socket', { timeout: 60_000 }, () => {
  let state: Awaited<ReturnType<typeof sharedState>>;
  before(async () => {
    state = await sharedState();
  });
  after(async () => {
    await killAll();
    await state?.cleanup();
  });

  it('fd:3 serves the socket it was given; exec children do not inherit it', async () => {
    const socket = await listening({ host: '127.0.0.1', port: 0 });
    const running = sockit(['serve', 'fd:3', '--exec', '--state-dir', state.path], {
      stdin: 'ignore',
      inherit: [socket.fd],
    });
    socket.handOver();
    const [address] = await bannerAddresses(running);
    assert.equal(address, socket.address);
    const client = await connect(address!, { token: TEST_TOKEN, stateDir: state.path });
    try {
      assert.equal((await client.echo(Buffer.from('inherited'))).toString(), 'inherited');
      const listing = await client.exec(['ls', '-l', '/proc/self/fd']);
      assert.equal(listing.code, 0);
      assert.ok(!listing.stdout.toString().includes(socket.link), `${socket.link} leaked to the child`);
    } finally {
      client.destroy();
    }
    assert.equal((await running.stop()).code, 0);
  });

  it('tls+fd:3 serves TLS on the inherited socket', async () => {
    const socket = await listening({ host: '127.0.0.1', port: 0 });
    const running = sockit(['serve', 'tls+fd:3', '--state-dir', state.path], {
      stdin: 'ignore',
      inherit: [socket.fd],
    });
    socket.handOver();
    const [address] = await bannerAddresses(running);
    assert.equal(address, socket.address.replace('tcp://', 'tls://'));
    const fingerprint = /TLS fingerprint \(SHA-256\): (\S+)/.exec(running.stdout().toString())?.[1];
    const client = await connect(address!, {
      token: TEST_TOKEN,
      stateDir: state.path,
      tls: { fingerprint: fingerprint! },
    });
    try {
      assert.equal((await client.echo('over tls')).toString(), 'over tls');
    } finally {
      client.destroy();
    }
    assert.equal((await running.stop()).code, 0);
  });

  it('systemd activation: LISTEN_FDS sockets served, named ones by fd:NAME, the variables unset for children', async () => {
    const tcp = await listening({ host: '127.0.0.1', port: 0 });
    const unix = await listening({ path: join(state.path, 'activated.sock') });
    // systemd sets LISTEN_PID after its fork; `exec` keeps the shell's pid, so $$ is the server's.
    const script = `LISTEN_PID=$$ exec "$0" "$@"`;
    const serve = [CLI, 'serve', 'fd:main', '--listen', 'fd:local', '--exec', '--state-dir', state.path];
    const running = launch('/bin/sh', ['-c', script, process.execPath, ...serve], {
      stdin: 'ignore',
      inherit: [tcp.fd, unix.fd],
      env: { LISTEN_FDS: '2', LISTEN_FDNAMES: 'main:local' },
    });
    tcp.handOver();
    unix.handOver();
    const addresses = await bannerAddresses(running, 2);
    assert.deepEqual(addresses, [tcp.address, unix.address]);
    for (const address of addresses) {
      const client = await connect(address, { token: TEST_TOKEN, stateDir: state.path });
      try {
        const env = await client.exec(['env']);
        assert.doesNotMatch(env.stdout.toString(), /^LISTEN_(PID|FDS|FDNAMES)=/m);
      } finally {
        client.destroy();
      }
    }
    assert.equal((await running.stop()).code, 0);
  });

  it('--workers 2 share the activated socket, with no address given', async () => {
    const socket = await listening({ host: '127.0.0.1', port: 0 });
    const serve = [CLI, 'serve', '--workers', '2', '--state-dir', state.path];
    const running = launch('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, ...serve], {
      stdin: 'ignore',
      inherit: [socket.fd],
      env: { LISTEN_FDS: '1' },
    });
    socket.handOver();
    const [address] = await bannerAddresses(running);
    const clients = await Promise.all(
      Array.from({ length: 8 }, () => connect(address!, { token: TEST_TOKEN, stateDir: state.path })),
    );
    try {
      const answers = await Promise.all(clients.map((client, i) => client.echo(Buffer.from(`c${i}`))));
      assert.deepEqual(
        answers.map((answer) => answer.toString()),
        clients.map((_, i) => `c${i}`),
      );
    } finally {
      for (const client of clients) client.destroy();
    }
    assert.equal((await running.stop()).code, 0);
  });

  it('a descriptor that is not a listening socket, or is stdio, is one clear error', async () => {
    const closed = await runCli(['serve', 'fd:999', '--state-dir', state.path]);
    assert.equal(closed.code, 2);
    assert.equal(
      closed.stderr,
      'sockit: USAGE: cannot listen on fd:999: descriptor 999 is not open (pass a listening socket as fd 999, or use socket activation)\n',
    );
    const file = openSync(join(state.path, 'token'), 'r');
    try {
      const notSocket = sockit(['serve', 'fd:3', '--state-dir', state.path], {
        stdin: 'ignore',
        inherit: [file],
      });
      assert.equal((await notSocket.exited).code, 2);
      assert.equal(
        notSocket.stderr(),
        'sockit: USAGE: cannot listen on fd:3: descriptor 3 is not a socket\n',
      );
    } finally {
      closeSync(file);
    }
    const stdio = await runCli(['serve', 'fd:1', '--state-dir', state.path]);
    assert.equal(stdio.code, 2);
    assert.match(stdio.stderr, /fd:N takes a descriptor number from 3 up/);
    const name = await runCli(['serve', 'fd:web', '--state-dir', state.path]);
    assert.equal(name.code, 2);
    assert.match(name.stderr, /a socket name needs systemd socket activation/);
  });
});

describe('takeSocketActivation', () => {
  it('takes the sockets meant for this pid, and always clears the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:admin' };
    assert.deepEqual(takeSocketActivation(env, 42), [
      { fd: 3, name: 'web' },
      { fd: 4, name: 'admin' },
    ]);
    assert.deepEqual(env, {});
    const other: NodeJS.ProcessEnv = { LISTEN_PID: '41', LISTEN_FDS: '1' };
    assert.equal(takeSocketActivation(other, 42), undefined);
    assert.deepEqual(other, {});
    assert.equal(takeSocketActivation({ LISTEN_PID: '42', LISTEN_FDS: 'x' }, 42), undefined);
  });

  it('resolves names and defaults to every activated socket', () => {
    const activated = [
      { fd: 3, name: 'web' },
      { fd: 4, name: 'unknown' },
    ];
    assert.deepEqual(resolveActivated([], activated), ['fd:3', 'fd:4']);
    assert.deepEqual(resolveActivated(['tls+fd:web', 'fd:4', 'tcp://127.0.0.1:0'], activated), [
      'tls+fd:3',
      'fd:4',
      'tcp://127.0.0.1:0',
    ]);
    assert.throws(
      () => resolveActivated(['fd:admin'], activated),
      /no socket named "admin" \(names: web, unknown\)/,
    );
    assert.deepEqual(resolveActivated([], undefined), []);
  });
});
