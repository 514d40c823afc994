/** `--bus` on the command line: usage errors, an unreachable bus, a mismatched heartbeat, secrets kept out of logs. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli, tempDir } from '../helpers.js';
import { killAll, launch, waitForText } from '../raw/helpers.js';
import { missingTool } from '../tools.js';
import { type Nats, sharedState, startBusServer, startNats } from './helpers.js';

describe('sockit serve/listen --bus', { timeout: 60_000 }, () => {
  let nats: Nats;
  let state: Awaited<ReturnType<typeof sharedState>>;
  before(async () => {
    nats = await startNats();
    state = await sharedState();
  });
  after(async () => {
    await killAll();
    await nats?.stop();
    await state?.cleanup();
  });

  it('refuses bad combinations with one clear line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--bus', nats.url], /USAGE: --bus shares chat rooms between servers: it goes with --chat/],
      [
        ['serve', '--chat', '--bus', 'http://127.0.0.1:1'],
        /USAGE: --bus takes nats:\/\/HOST:PORT or tls:\/\/HOST:PORT/,
      ],
      [
        ['serve', '--chat', '--bus-creds', '/nonexistent'],
        /USAGE: --bus-creds only mean something with --bus/,
      ],
      [
        ['serve', '--chat', '--bus', nats.url, '--bus-heartbeat', '5ms'],
        /USAGE: --bus-heartbeat must be at least 100 ms/,
      ],
      [
        ['serve', '--chat', '--bus', nats.url, '--bus-creds', '/nonexistent/x.creds'],
        /USAGE: cannot read the bus credentials/,
      ],
      [['listen', '--bus', nats.url], /USAGE: --bus shares a --broker or --chat with other servers/],
    ];
    for (const [args, expected] of cases) {
      const result = await runCli([...args, '--state-dir', state.path]);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, expected);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('an unreachable bus is CONNECT_FAILED (exit 3)', async () => {
    const result = await runCli([
      'serve',
      '--chat',
      '--bus',
      'nats://127.0.0.1:1',
      '--state-dir',
      state.path,
    ]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /CONNECT_FAILED: cannot reach the bus at 127\.0\.0\.1:1/);
  });

  it('a server with another heartbeat than the bus uses is refused, naming the one to use', async () => {
    const first = await startBusServer(nats.url, state.path, ['--bus-heartbeat', '700ms']);
    const result = await runCli([
      'serve',
      '--chat',
      '--bus',
      nats.url,
      '--bus-heartbeat',
      '900ms',
      '--state-dir',
      state.path,
    ]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /start this one with --bus-heartbeat 700ms too/);
    await first.stop();
  });

  it('never logs the password in the bus URL, even when the bus goes down', async () => {
    const why = missingTool('nats-server');
    assert.equal(why, undefined, why);
    const store = await tempDir('sockit-nats-auth-');
    const guarded = launch('nats-server', [
      ...['-a', '127.0.0.1', '-p', '-1', '-js', '-sd', store.path],
      ...['--user', 'sockit', '--pass', 'hunter2-secret'],
    ]);
    try {
      const port = (await waitForText(guarded, /client connections on 127\.0\.0\.1:(\d+)/))[1]!;
      await waitForText(guarded, /Server is ready/);
      const wrong = await runCli([
        'serve',
        '--chat',
        '--bus',
        `nats://sockit:wrong-secret@127.0.0.1:${port}`,
        '--state-dir',
        state.path,
      ]);
      assert.equal(wrong.code, 3, wrong.stderr);
      assert.match(
        wrong.stderr,
        /CONNECT_FAILED: cannot reach the bus at 127\.0\.0\.1:\d+: Authorization Violation/,
      );
      assert.doesNotMatch(wrong.stderr + wrong.stdout, /wrong-secret/);

      const server = await startBusServer(`nats://sockit:hunter2-secret@127.0.0.1:${port}`, state.path, [
        '--log-level',
        'debug',
      ]);
      guarded.child.kill('SIGKILL');
      await waitForText(server, /bus down: serving local members only, reconnecting/);
      assert.doesNotMatch(server.stderr() + server.stdout().toString(), /hunter2-secret/);
      assert.match(server.stdout().toString(), /bus: 127\.0\.0\.1:\d+ \(NATS/);
      await server.stop();
    } finally {
      await guarded.stop();
      await store.cleanup();
    }
  });

  it('a NATS without JetStream is refused at start, saying to run it with -js', async () => {
    const plain = launch('nats-server', ['-a', '127.0.0.1', '-p', '-1']);
    try {
      const port = (await waitForText(plain, /client connections on 127\.0\.0\.1:(\d+)/))[1]!;
      await waitForText(plain, /Server is ready/);
      const result = await runCli([
        'serve',
        '--chat',
        '--bus',
        `nats://127.0.0.1:${port}`,
        '--state-dir',
        state.path,
      ]);
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /CONNECT_FAILED: .*start nats-server with -js/);
    } finally {
      await plain.stop();
    }
  });
});
