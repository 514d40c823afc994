/** The tutorials' own remote-command and upload clients (bench/peers) against sockit's safe modes. */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { splitCommandLine } from '../../src/raw/argv-split.js';
import { EMPTY_OUTPUT_REPLY, lengthPrefixed } from '../../src/raw/tutorial-exec.js';
import { runCli, tempDir } from '../helpers.js';
import { requireTool } from '../tools.js';
import { dial, killAll, type Listening, launch, readBytes, startListen, waitForText } from './helpers.js';

const PEERS = fileURLToPath(new URL('../../../bench/peers/', import.meta.url));

describe('splitCommandLine: argv the way a shell splits words, and nothing more', () => {
  it('honours quotes and backslashes and expands nothing', () => {
    assert.deepEqual(splitCommandLine('ls  -la\t/tmp'), ['ls', '-la', '/tmp']);
    assert.deepEqual(splitCommandLine(`echo 'a  b' "c \\"d\\"" e\\ f`), ['echo', 'a  b', 'c "d"', 'e f']);
    assert.deepEqual(splitCommandLine('echo $HOME; rm -rf / | cat > x `id`'), [
      'echo',
      '$HOME;',
      'rm',
      '-rf',
      '/',
      '|',
      'cat',
      '>',
      'x',
      '`id`',
    ]);
    assert.deepEqual(splitCommandLine(`printf '' ""`), ['printf', '', '']);
    assert.deepEqual(splitCommandLine('  \n'), []);
  });

  it('refuses an unclosed quote and a trailing backslash', () => {
    assert.throws(() => splitCommandLine(`echo 'oops`), /BAD_REQUEST|unclosed ' quote/);
    assert.throws(() => splitCommandLine('echo "oops'), /unclosed " quote/);
    assert.throws(() => splitCommandLine('echo \\'), /lone backslash/);
  });
});

describe('lengthPrefixed: struct.pack("i", n) + body', () => {
  it('writes a signed 32-bit length in native byte order', () => {
    const framed = lengthPrefixed(Buffer.from('hello'));
    const length = endianness() === 'LE' ? framed.readInt32LE(0) : framed.readInt32BE(0);
    assert.equal(length, 5);
    assert.equal(framed.subarray(4).toString(), 'hello');
  });
});

describe('listen --tutorial-exec: the tutorial remote-command client, unchanged', { timeout: 60_000 }, () => {
  let server: Listening;
  let work: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    work = await tempDir();
    server = await startListen(
      ['127.0.0.1:0', '--tutorial-exec', '--exec-allow', 'echo,ls,printf,false', '-v'],
      { stdin: 'ignore' },
    );
  });
  after(async () => {
    await killAll();
    await work.cleanup();
  });

  it('answers each command of the interactive client, argv without a shell, refusing programs off the list', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const client = launch(python, [join(PEERS, 'remote_cmd_client.py'), '127.0.0.1', String(server.port)]);
    const marker = join(work.path, 'injected');
    client.child.stdin!.end(
      [
        'echo hello world',
        `echo 'a  b' $HOME; touch ${marker}`,
        'uname -a',
        'ls /nonexistent-dir',
        'printf ""',
        `printf '%03000d' 0`,
        'quit',
        '',
      ].join('\n'),
    );
    const exit = await client.exited;
    assert.equal(exit.code, 0, client.stderr());
    const answers = client
      .stdout()
      .toString('utf8')
      .split('>>>')
      .filter((part) => part.startsWith('命令的执行结果是 '))
      .map((part) => part.slice('命令的执行结果是 '.length));
    assert.equal(answers.length, 6, client.stdout().toString());
    assert.equal(answers[0], 'hello world\n\n');
    assert.equal(answers[1], `a  b $HOME; touch ${marker}\n\n`, 'no shell: $HOME and ; are plain bytes');
    assert.equal(
      answers[2],
      `sockit: FORBIDDEN: "uname" is not on this server's allow-list (echo, ls, printf, false)\n\n`,
    );
    assert.match(
      answers[3]!,
      /^ls: cannot access '\/nonexistent-dir': No such file or directory\nsockit: exit status 2\n\n$/,
    );
    // The client decodes as GBK (the seed's default), so the tutorial's "no output" marker reads right.
    assert.equal(answers[4], '执行成功\n');
    assert.deepEqual(EMPTY_OUTPUT_REPLY, Buffer.from('d6b4d0d0b3c9b9a6', 'hex'));
    assert.equal(answers[5], `${'0'.repeat(3000)}\n`, 'an answer over 1024 bytes arrives whole');
    await assert.rejects(readFile(marker), { code: 'ENOENT' });
    await waitForText(server, /runs echo hello world/);
  });

  it('times the benchmark mode of the client: 20 round trips on one connection', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const client = launch(python, [
      join(PEERS, 'remote_cmd_client.py'),
      '127.0.0.1',
      String(server.port),
      '20',
      'echo',
      'hello',
    ]);
    const exit = await client.exited;
    assert.equal(exit.code, 0, client.stderr());
    assert.match(client.stdout().toString(), /^\d+\.\d+\n$/);
  });

  it('answers a plain socket with the 4-byte native length then the output', async () => {
    const socket = await dial(server.port);
    const reply = readBytes(socket, 4 + 6);
    socket.write('echo hello');
    assert.deepEqual(await reply, lengthPrefixed(Buffer.from('hello\n')));
    socket.destroy();
  });

  it('needs an allow-list, and --exec-allow needs the mode: usage errors, exit 2', async () => {
    const bare = await runCli(['listen', '127.0.0.1:0', '--tutorial-exec']);
    assert.equal(bare.code, 2);
    assert.equal(
      bare.stderr,
      'sockit: USAGE: --tutorial-exec needs --exec-allow PROGRAMS (comma-separated), e.g. --exec-allow ls,uname\n',
    );
    const stray = await runCli(['listen', '127.0.0.1:0', '--exec-allow', 'ls']);
    assert.equal(stray.code, 2);
    assert.equal(stray.stderr, 'sockit: USAGE: --exec-allow goes with --tutorial-exec\n');
  });
});

describe('listen --tutorial-upload DIR: the tutorial upload client, unchanged', { timeout: 60_000 }, () => {
  let server: Listening;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let source: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir();
    source = await tempDir();
    server = await startListen(['127.0.0.1:0', '--tutorial-upload', dir.path, '-v'], { stdin: 'ignore' });
  });
  after(async () => {
    await killAll();
    await dir.cleanup();
    await source.cleanup();
  });

  it('stores each upload whole under the next upload-N, published only on quit', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const first = join(source.path, 'first.txt');
    const second = join(source.path, 'second.bin');
    const firstText = Array.from(
      { length: 200 },
      (_, index) => `line ${index} ${'é'.repeat(index % 7)}\n`,
    ).join('');
    await writeFile(first, firstText);
    await writeFile(second, 'short\nlast line without newline');
    for (const path of [first, second]) {
      const client = launch(python, [join(PEERS, 'file_client.py'), '127.0.0.1', String(server.port), path]);
      const exit = await client.exited;
      assert.equal(exit.code, 0, client.stderr());
    }
    await waitForText(server, /uploaded \d+ bytes as upload-2/);
    assert.deepEqual((await readdir(dir.path)).sort(), ['upload-1', 'upload-2']);
    assert.equal(await readFile(join(dir.path, 'upload-1'), 'utf8'), firstText);
    assert.equal(await readFile(join(dir.path, 'upload-2'), 'utf8'), 'short\nlast line without newline');
  });

  it('keeps the protocol’s limit: a last line that is exactly "quit" ends the file', async (t) => {
    const python = requireTool(t, 'python3');
    if (!python) return;
    const path = join(source.path, 'quit.txt');
    await writeFile(path, 'data\nquit');
    const client = launch(python, [join(PEERS, 'file_client.py'), '127.0.0.1', String(server.port), path]);
    const exit = await client.exited;
    assert.equal(exit.code, 1, 'the tutorial client notices that its own `quit` found the server gone');
    const [, name] = (await waitForText(server, /uploaded 5 bytes as (upload-\d+)/)) as RegExpMatchArray;
    assert.equal(await readFile(join(dir.path, name!), 'utf8'), 'data\n');
  });

  it('a client that leaves before quit publishes nothing and leaves no temp file', async () => {
    const before = (await readdir(dir.path)).sort();
    const socket = await dial(server.port);
    const ack = readBytes(socket, 'success'.length);
    socket.write('partial data');
    assert.equal((await ack).toString(), 'success');
    socket.destroy();
    await waitForText(server, /left before "quit": its upload is discarded/);
    assert.deepEqual((await readdir(dir.path)).sort(), before);
  });

  it('refuses a directory that does not exist with a usage error', async () => {
    const result = await runCli(['listen', '127.0.0.1:0', '--tutorial-upload', join(dir.path, 'nope')]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `sockit: USAGE: --tutorial-upload ${join(dir.path, 'nope')}: no such directory\n`,
    );
  });
});
