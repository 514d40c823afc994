/**
 * Data channels (docs/protocol.md "Data channels"): a terminal's bytes on a second plain
 * connection, copied in C at both ends; the one-time key; every way back to frames.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import type { JoinedChannel } from '../../src/client/channel.js';
import { connect } from '../../src/client/client.js';
import type { RemoteProcess } from '../../src/client/exec.js';
import { computeProof } from '../../src/protocol/auth.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { encodeFrameToBuffer, type FrameHeader } from '../../src/protocol/frame.js';
import { ChannelOffers } from '../../src/server/channels.js';
import type { Server } from '../../src/server/server.js';
import { resumeReading } from '../../src/transport/descriptor-relay.js';
import { startExec, waitUntilDead } from '../exec/helpers.js';
import { runCli, TEST_TOKEN, tempDir } from '../helpers.js';
import { RawPeer } from '../server/peer.js';

const PTY = { term: 'dumb', rows: 24, cols: 80 };

/** Reads a joined channel in JavaScript (the CLI copies it in C): its text until `pattern` shows. */
function channelText(channel: JoinedChannel): {
  until(pattern: RegExp): Promise<string>;
  all(): Promise<string>;
} {
  const socket = channel.socket;
  let text = channel.early.toString('latin1');
  const ended = new Promise<void>((resolve) => socket.once('end', resolve));
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  resumeReading(socket); // the CLI copies the descriptor in C; the test reads it in JavaScript
  return {
    async until(pattern) {
      while (!pattern.test(text)) await once(socket, 'data');
      return text;
    },
    async all() {
      await ended;
      return text;
    },
  };
}

/**
 * The audit entries of `file` once there are more than `after` (the server writes a request's
 * line after its exit frame): waits on the file's changes, not on a clock.
 */
async function auditEntries(file: string, after: number): Promise<Record<string, unknown>[]> {
  const watcher = watch(file);
  try {
    for (;;) {
      const lines = (await readFile(file, 'utf8')).trim().split('\n').filter(Boolean);
      if (lines.length > after) return lines.map((line) => JSON.parse(line));
      await once(watcher, 'change');
    }
  } finally {
    watcher.close();
  }
}

/** Lines in an audit file so far (0 before the first). */
async function auditCount(file: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').filter(Boolean).length;
}

/** Runs `argv` in a terminal over a data channel: its exit, and all the channel carried. */
async function overChannel(
  exec: Awaited<ReturnType<typeof startExec>>,
  argv: string[],
): Promise<{ exit: Awaited<RemoteProcess['exited']>; text: string }> {
  const remote = exec.client.spawn(argv, { pty: PTY, channel: true });
  const channel = await remote.channel;
  assert.ok(channel, 'a channel is joined');
  try {
    const output = channelText(channel);
    const exit = await remote.exited;
    return { exit, text: await output.all() };
  } finally {
    channel.socket.destroy();
  }
}

/** A `sh` in a terminal asked to use a channel; resolves with it once joined. */
async function shellWithChannel(exec: Awaited<ReturnType<typeof startExec>>): Promise<{
  remote: RemoteProcess;
  channel: JoinedChannel | undefined;
  inBand: () => string;
}> {
  const remote = exec.client.spawn(['sh'], { pty: PTY, channel: true });
  let inBand = '';
  remote.stdout.on('data', (chunk: Buffer) => {
    inBand += chunk.toString('latin1');
  });
  return { remote, channel: await remote.channel, inBand: () => inBand };
}

describe('data channels', { timeout: 60_000 }, () => {
  let exec: Awaited<ReturnType<typeof startExec>>;
  let audit: Awaited<ReturnType<typeof tempDir>>;
  let auditFile: string;

  before(async () => {
    audit = await tempDir();
    auditFile = join(audit.path, 'audit.jsonl');
    await writeFile(auditFile, '');
    exec = await startExec(
      { allowPty: true, auditFile },
      { listen: ['tcp://127.0.0.1:0', 'tls://127.0.0.1:0'] },
    );
  });
  after(async () => {
    await exec.stop();
    await audit.cleanup();
  });

  test('a terminal on tcp carries its bytes on the channel, none in frames; exit after its output', async () => {
    const before = await auditCount(auditFile);
    const { remote, channel, inBand } = await shellWithChannel(exec);
    assert.ok(channel, 'a channel is joined on a plain connection');
    try {
      const output = channelText(channel);
      channel.socket.write('echo "[$((6*7))]"; exit 4\n');
      await output.until(/\[42\]/);
      const exit = await remote.exited;
      assert.equal(exit.code, 4);
      assert.match(await output.all(), /\[42\]/);
      assert.equal(inBand(), '', 'no stdout frame');
    } finally {
      channel.socket.destroy();
    }
    const entry = (await auditEntries(auditFile, before))[before]!;
    assert.equal(entry.channel, true);
    assert.ok(Number(entry.stdoutBytes) > 0 && Number(entry.stdinBytes) > 0, JSON.stringify(entry));
  });

  test('a command that exits before the client attaches still delivers its output on the channel', async () => {
    const control = await RawPeer.open(exec.address);
    try {
      await control.handshake();
      control.send({ type: 'exec', id: 1, argv: ['sh', '-c', 'echo early-bird'], pty: PTY, channel: true });
      const offer = (await control.next())!;
      assert.equal(offer.header.type, 'channel');
      // The command is gone (its pid reaped) before anyone attaches: the output waited unread.
      const started = (await control.next())!;
      assert.equal(started.header.type, 'started');
      await waitUntilDead(Number(started.header.pid));
      const data = await RawPeer.open(exec.address);
      data.send({ type: 'attach', key: String(offer.header.key) });
      await data.closed;
      assert.match(data.text, /early-bird/);
      assert.equal((await control.next())?.header.type, 'exit');
    } finally {
      control.socket.destroy();
    }
  });

  test('over TLS the server offers no channel even when asked: the bytes stay in frames', async () => {
    const peer = await RawPeer.openTls((exec.server.addresses[1] as { port: number }).port);
    try {
      await peer.handshake();
      peer.send({ type: 'exec', id: 1, argv: ['sh', '-c', 'echo in-band'], pty: PTY, channel: true });
      const types: string[] = [];
      for (let frame = await peer.next(); frame; frame = await peer.next()) {
        types.push(String(frame.header.type));
        if (frame.header.type === 'exit') break;
      }
      assert.ok(!types.includes('channel'), types.join(','));
      assert.ok(types.includes('stdout'), types.join(','));
    } finally {
      peer.socket.destroy();
    }
  });

  test('over TLS nothing is offered: the bytes stay in frames', async () => {
    const tlsAddress = `tls://127.0.0.1:${(exec.server.addresses[1] as { port: number }).port}`;
    const client = await connect(tlsAddress, {
      token: TEST_TOKEN,
      stateDir: exec.stateDir,
    });
    try {
      assert.notEqual(client.channelKind, 'raw');
      const remote = client.spawn(['sh', '-c', 'echo in-band'], { pty: PTY, channel: true });
      let text = '';
      remote.stdout.on('data', (chunk: Buffer) => {
        text += chunk;
      });
      assert.equal(await remote.channel, undefined);
      assert.equal((await remote.exited).code, 0);
      assert.match(text, /in-band/);
    } finally {
      await client.close();
    }
  });

  test('on the wire: a key works once (AUTH_FAILED), and an unknown one over TLS too', async () => {
    const control = await RawPeer.open(exec.address);
    control.send({ type: 'hello', version: 1 });
    const welcome = (await control.next())!;
    control.send({ type: 'auth', proof: computeProof(TEST_TOKEN, String(welcome.header.nonce)) });
    assert.equal((await control.next())?.header.type, 'ready');
    control.send({
      type: 'exec',
      id: 1,
      argv: ['sh', '-c', 'read line; echo "got $line"'],
      pty: PTY,
      channel: true,
    });
    const offer = (await control.next())!;
    assert.equal(offer.header.type, 'channel');
    const key = String(offer.header.key);
    assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    const data = await RawPeer.open(exec.address);
    data.send({ type: 'attach', key });
    assert.equal((await data.next())?.header.type, 'attached');
    // From here the connection is raw bytes: a line in, the terminal's echo and answer out.
    data.socket.write('it\n');
    const replay = await RawPeer.open(exec.address);
    replay.send({ type: 'attach', key });
    assert.equal((await replay.next())?.header.code, 'AUTH_FAILED');
    await replay.closed;
    // TLS connections carry sealed channels (a tunnel stream's): a key no offer has is refused there too.
    assert.equal((await attachOverTls(exec.server, 'B'.repeat(43))).code, 'AUTH_FAILED');
    const frames: string[] = [];
    for (
      let frame = await control.next();
      frame && frame.header.type !== 'exit';
      frame = await control.next()
    ) {
      frames.push(String(frame.header.type));
    }
    assert.deepEqual(frames, ['started'], 'no stdout frame: the output went over the channel');
    await data.closed; // the server ended the channel (our side then closed too)
    assert.match(data.text, /got it/);
    control.socket.destroy();
    await control.closed;
  });

  test('a channel reset while the command runs kills it, as a disconnect does', async () => {
    const { remote, channel } = await shellWithChannel(exec);
    assert.ok(channel);
    await remote.started;
    (channel.socket as Socket).resetAndDestroy();
    // The terminal's next output has nowhere to go: its copy fails and the command is killed.
    remote.stdin!.write('echo after\n');
    const exit = await remote.exited;
    assert.equal(exit.signal, 'SIGKILL');
  });

  test('a channel reset kills a command that writes nothing too: the keystroke side sees it', async () => {
    const remote = exec.client.spawn(['sleep', '60'], { pty: PTY, channel: true });
    const channel = await remote.channel;
    assert.ok(channel);
    await remote.started;
    (channel.socket as Socket).resetAndDestroy();
    const exit = await remote.exited;
    assert.equal(exit.signal, 'SIGKILL');
  });

  test('the output cap holds on the channel: exactly that many bytes, then the command is killed', async () => {
    const capped = await startExec({ allowPty: true, maxOutputBytes: 5000 });
    try {
      const yes = await overChannel(capped, ['yes']);
      assert.equal(yes.exit.truncated, true);
      assert.equal(yes.text.length, 5000);
      // Output of exactly the cap is all of it: nothing was cut, the command ends on its own.
      const exact = await overChannel(capped, ['sh', '-c', "head -c 5000 /dev/zero | tr '\\0' x"]);
      assert.equal(exact.exit.truncated, false);
      assert.equal(exact.exit.code, 0);
      assert.equal(exact.text, 'x'.repeat(5000));
    } finally {
      await capped.stop();
    }
  });

  test('joining fails (the server at its connection limit): declined, and the bytes come in frames', async () => {
    const full = await startExec({ allowPty: true }, { limits: { maxConnections: 1 } });
    try {
      const remote = full.client.spawn(['sh', '-c', 'read line; echo "got $line"'], {
        pty: PTY,
        channel: true,
      });
      let text = '';
      remote.stdout.on('data', (chunk: Buffer) => {
        text += chunk;
      });
      assert.equal(await remote.channel, undefined);
      remote.stdin!.write('it\n');
      assert.equal((await remote.exited).code, 0);
      assert.match(text, /got it/);
    } finally {
      await full.stop();
    }
  });

  test('a server started without channels offers none', async () => {
    const none = await startExec({ allowPty: true }, { channels: false });
    try {
      const remote = none.client.spawn(['true'], { pty: PTY, channel: true });
      assert.equal(await remote.channel, undefined);
      assert.equal((await remote.exited).code, 0);
    } finally {
      await none.stop();
    }
  });

  test('sockit exec -tt uses a channel; a client without the addon keeps the bytes in frames', async () => {
    const dir = await tempDir('sockit-channel-cli-');
    try {
      const env = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: dir.path, HOME: dir.path };
      for (const withoutAddon of [true, false]) {
        const before = await auditCount(auditFile);
        const run = await runCli(['exec', '-tt', exec.address, '--', 'cat'], {
          env: { ...env, SOCKIT_NO_NATIVE: withoutAddon ? '1' : '' },
          input: 'typed\n',
          timeoutMs: 20_000,
        });
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /typed\r\ntyped\r\n/);
        const entry = (await auditEntries(auditFile, before))[before]!;
        assert.equal(entry.channel, withoutAddon ? undefined : true, JSON.stringify(entry));
      }
    } finally {
      await dir.cleanup();
    }
  });
});

/** Sends `attach` as the first frame of a TLS connection to `server`; resolves with its answer. */
async function attachOverTls(server: Server, key: string): Promise<FrameHeader> {
  const port = (server.addresses[1] as { port: number }).port;
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  socket.write(encodeFrameToBuffer({ type: 'attach', key }));
  const decoder = new FrameDecoder();
  try {
    for (;;) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      decoder.push(chunk);
      const frame = decoder.next();
      if (frame) return frame.header;
    }
  } finally {
    socket.destroy();
  }
}

describe('channel offers', () => {
  test('an offer not attached by its deadline is withdrawn: its key no longer works', async () => {
    const offers = new ChannelOffers();
    const offer = offers.offer(20, 'raw');
    // The offer's timer does not hold a server open; this one holds the test's loop meanwhile.
    const bound = setTimeout(() => {}, 5000);
    try {
      assert.equal(await offer.attached, undefined);
    } finally {
      clearTimeout(bound);
    }
    assert.equal(offers.take(offer.key, 'raw'), undefined);
  });

  test('a withdrawn offer resolves undefined; a taken one cannot be taken again', async () => {
    const offers = new ChannelOffers();
    const first = offers.offer(10_000, 'raw');
    first.withdraw();
    assert.equal(await Promise.race([first.attached, 'pending']), undefined);
    const second = offers.offer(10_000, 'raw');
    assert.ok(offers.take(second.key, 'raw'));
    assert.equal(offers.take(second.key, 'raw'), undefined);
    offers.clear();
  });

  test('an offer attached on a connection of the other kind is withdrawn, not joined', async () => {
    const offers = new ChannelOffers();
    const sealed = offers.offer(10_000, 'sealed');
    assert.equal(offers.take(sealed.key, 'raw'), undefined);
    assert.equal(await sealed.attached, undefined);
    assert.equal(offers.take(sealed.key, 'sealed'), undefined);
  });
});
