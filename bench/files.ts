/**
 * The files suite: a 1 GiB file (SOCKIT_BENCH_FILE_MIB) of random bytes put and got with `sockit put/get` (the built
 * CLI, a child process, against `sockit serve --files` in another), each case in the same run
 * as its peers:
 *
 * - to tmpfs (/dev/shm), the disk out of the picture: the default checksum (xxh64) and
 *   `--checksum sha256`, and `--compress` on the random file (it must not get slower), against
 *   raw `ncat` and `socat` pipes of the same file (no names, no verification), with the
 *   CPU-seconds per GiB of each side of each (user + system: /proc for the server, the process's
 *   own resource usage for the client, `/usr/bin/time` for the peers);
 * - a text file (SOCKIT_BENCH_TEXT_MIB, default the same size) put with `--compress` against
 *   `rsync -z` (zstd where rsync has it) to an rsync daemon: time and bytes on the wire;
 * - to disk: `dd conv=fsync` copying the file locally (the disk's durable-write limit) and
 *   `rsync --fsync` to an rsync daemon on loopback;
 * - the seeds' Python line-by-line transfer (bench/peers/file_*.py) on a 10 MiB text file.
 *
 * Peak RSS: the server's VmHWM from /proc (a fresh server per case), the client's
 * `process.resourceUsage().maxRSS` printed at exit by a preloaded one-liner. Each subject runs
 * SOCKIT_BENCH_FILE_RUNS times (default 2) and the best run counts: other work on a small shared
 * machine only ever slows a run down. SOCKIT_BENCH_FILE_MIB changes the file size.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKSUMS, type ChecksumName } from '../src/protocol/files.js';
import { createChecksum } from '../src/storage/checksum.js';
import { readChunks } from '../src/storage/file-reader.js';
import { freePort, waitListening } from './lib/ports.js';
import { cpuTimeMs, memoryOf } from './lib/proc.js';
import { writeRandomFile } from './lib/random-file.js';
import { findPython, SOCKIT_CLI, startSockitServe } from './lib/servers.js';
import { round } from './lib/stats.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const FILE_BYTES = Number(process.env.SOCKIT_BENCH_FILE_MIB ?? 1024) * MiB;
const TEXT_BYTES = Number(process.env.SOCKIT_BENCH_TEXT_MIB ?? FILE_BYTES / MiB) * MiB;
const GiB = 1024 * MiB;
/** The issue's bound: each side's CPU-seconds per GiB at most this many times ncat's. */
const CPU_BOUND = 1.5;
const RUNS = Math.max(1, Number(process.env.SOCKIT_BENCH_FILE_RUNS ?? 2));
const PYTHON_BYTES = 10 * MiB;
/** One transfer may take this long before it is killed (a stuck peer must not stall the run). */
const TIMEOUT_MS = 120_000;
const TMPFS_MAGIC = 0x01021994;

const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
/** Preloaded into the client CLI: its peak RSS, printed when it exits. */
const REPORT_RSS =
  "--import=data:text/javascript,process.on('exit',()=>{const u=process.resourceUsage();" +
  "process.stderr.write('MAXRSS '+u.maxRSS+' CPU '+(u.userCPUTime+u.systemCPUTime)+'\\n')})";

const SIZE_LABEL = `${FILE_BYTES / MiB} MiB`;
const CASE_TMPFS_PUT = `put ${SIZE_LABEL} to tmpfs`;
const CASE_TEXT = `put ${TEXT_BYTES / MiB} MiB text file, compressed`;
const CASE_TMPFS_GET = `get ${SIZE_LABEL} to tmpfs`;
const CASE_DISK_PUT = `put ${SIZE_LABEL} to disk`;
const CASE_DISK_GET = `get ${SIZE_LABEL} to disk`;
const CASE_PYTHON = '10 MiB text file, line by line (seed)';

interface Run {
  seconds: number;
  clientRss?: number;
  serverRss?: number;
  /** Seconds the CLI itself counted for the transfer (no process start, no connect). */
  transferSeconds?: number;
  /** CPU seconds (user + system) of the client process, and of the server during the transfer. */
  clientCpu?: number;
  serverCpu?: number;
  /** File bytes on the wire (compressed or not), as the sockit CLI or rsync --stats reports. */
  wireBytes?: number;
}

/** The source file's digest in each checksum, to check what the CLI reports. */
type Digests = Record<ChecksumName, string>;

export const filesSuite: BenchSuite = {
  name: 'files',
  async run(context) {
    const shmBase = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    if (shmBase !== '/dev/shm')
      context.note('/dev/shm is missing: the "tmpfs" cases use the temp dir instead.');
    const diskBase = process.env.SOCKIT_BENCH_DISK_DIR ?? tmpdir();
    if (isTmpfs(diskBase)) {
      context.note(`${diskBase} is tmpfs: the "disk" cases do not touch a disk (set SOCKIT_BENCH_DISK_DIR).`);
    }
    const shm = await mkdtemp(join(shmBase, 'sockit-bench-files-'));
    const disk = await mkdtemp(join(diskBase, 'sockit-bench-files-'));
    // An interrupted run (Ctrl-C, a closed pipe) must not leave gigabytes in /dev/shm.
    const removeNow = (): void => {
      rmSync(shm, { recursive: true, force: true });
      rmSync(disk, { recursive: true, force: true });
    };
    process.once('exit', removeNow);
    try {
      const source = join(shm, 'source.bin');
      await writeRandomFile(source, FILE_BYTES);
      const sha = await digestsOf(source);
      const tools = {
        ncat: hasTool('ncat', ['--version']),
        socat: hasTool('socat', ['-V']),
        rsync: hasTool('rsync', ['--version']),
      };
      for (const [tool, present] of Object.entries(tools)) {
        if (!present) {
          context.note(
            `${tool} is not installed: its peer case is skipped (Debian/Ubuntu: sudo apt-get install ${tool}).`,
          );
        }
      }
      context.record({
        case: 'SHA-256 of 1 GiB in memory, one core',
        subject: 'node:crypto (the ceiling of a verified transfer)',
        value: round(sha256Rate()),
        unit: 'MB/s',
      });
      await tmpfsCases(context, shm, source, sha, tools);
      await textCase(context, shm, tools);
      await diskCases(context, disk, source, sha, tools);
      await pythonCase(context, shm);
    } finally {
      process.off('exit', removeNow);
      await rm(shm, { recursive: true, force: true });
      await rm(disk, { recursive: true, force: true });
    }
  },
};

// ---- cases -----------------------------------------------------------------------------

async function tmpfsCases(
  context: BenchContext,
  shm: string,
  source: string,
  sha: Digests,
  tools: { ncat: boolean; socat: boolean },
): Promise<void> {
  const { root, local, remove } = await makeRootAndLocal(shm);
  const put = await best(() => sockitPut(source, root, 'put.bin', sha));
  recordSockit(context, CASE_TMPFS_PUT, 'sockit put (xxh64 verified, the default)', put, 'put');
  const putSha = await best(() => sockitPut(source, root, 'put.bin', sha, ['--checksum', 'sha256']));
  recordSockit(context, CASE_TMPFS_PUT, 'sockit put --checksum sha256', putSha, 'put');
  const putZ = await best(() => sockitPut(source, root, 'put.bin', sha, ['--compress']));
  recordSockit(context, CASE_TMPFS_PUT, 'sockit put --compress (random bytes: chunks go plain)', putZ, 'put');
  const get = await best(() => sockitGet(root, 'put.bin', join(local, 'got.bin'), sha));
  recordSockit(context, CASE_TMPFS_GET, 'sockit get (xxh64 verified, the default)', get, 'get');
  const getSha = await best(() =>
    sockitGet(root, 'put.bin', join(local, 'got.bin'), sha, ['--checksum', 'sha256']),
  );
  recordSockit(context, CASE_TMPFS_GET, 'sockit get --checksum sha256', getSha, 'get');
  context.ratio({
    case: CASE_TMPFS_PUT,
    label: 'sockit put --compress / sockit put, random bytes (compression must not slow it)',
    value: rate(putZ) / rate(put),
    target: 0.9,
  });

  const peers: { name: string; run: Run }[] = [];
  const out = join(shm, 'pipe.out');
  if (tools.ncat) {
    const ncat = await best(() => ncatPipe(source, out));
    recordPeer(context, CASE_TMPFS_PUT, 'ncat pipe (no verification)', ncat);
    peers.push({ name: 'ncat', run: ncat });
  }
  if (tools.socat) {
    const socat = await best(() => socatPipe(source, out));
    recordPeer(context, CASE_TMPFS_PUT, 'socat pipe (no verification)', socat);
    peers.push({ name: 'socat', run: socat });
  }
  await rm(out, { force: true });
  if (peers.length > 0) {
    const fastest = Math.max(...peers.map((peer) => rate(peer.run)));
    for (const [name, run, label] of [
      [CASE_TMPFS_PUT, put, 'sockit put'],
      [CASE_TMPFS_PUT, putSha, 'sockit put --checksum sha256'],
      [CASE_TMPFS_GET, get, 'sockit get'],
      [CASE_TMPFS_GET, getSha, 'sockit get --checksum sha256'],
    ] as const) {
      context.ratio({
        case: name,
        label: `${label} / faster of ncat, socat`,
        value: rate(run) / fastest,
        ...(label.includes('sha256') ? {} : { target: 1 }),
      });
    }
  }
  const ncat = peers.find((peer) => peer.name === 'ncat')?.run;
  if (ncat) {
    for (const [name, run, verb] of [
      [CASE_TMPFS_PUT, put, 'put'],
      [CASE_TMPFS_GET, get, 'get'],
    ] as const) {
      for (const role of ['sender', 'receiver'] as const) {
        const sockitCpu = cpuOf(run, verb, role);
        const ncatSeconds = role === 'sender' ? ncat.clientCpu : ncat.serverCpu;
        const ncatCpu = ncatSeconds === undefined ? undefined : (ncatSeconds * GiB) / FILE_BYTES;
        if (sockitCpu === undefined || ncatCpu === undefined) continue;
        context.ratio({
          case: name,
          label: `${CPU_BOUND} × ncat ${role} CPU-s/GiB / sockit ${verb} ${role} (${role === 'sender' ? (verb === 'put' ? 'client' : 'server') : verb === 'put' ? 'server' : 'client'})`,
          value: (CPU_BOUND * ncatCpu) / sockitCpu,
          target: 1,
        });
      }
    }
  }
  await remove();
}

/**
 * A text file (log lines: about 4× smaller under deflate) put with `--compress` against
 * `rsync -z` to a daemon, zstd where this rsync has it: seconds and bytes on the wire.
 */
async function textCase(context: BenchContext, shm: string, tools: { rsync: boolean }): Promise<void> {
  const text = join(shm, 'text.log');
  await writeLogText(text, TEXT_BYTES);
  const sha = await digestsOf(text);
  const { root, remove } = await makeRootAndLocal(join(shm, 'text'));
  try {
    const plain = await best(() => sockitPut(text, root, 'text.log', sha));
    recordSockit(context, CASE_TEXT, 'sockit put (no compression)', plain, 'put', TEXT_BYTES);
    const compressed = await best(() => sockitPut(text, root, 'text.log', sha, ['--compress']));
    recordSockit(
      context,
      CASE_TEXT,
      'sockit put --compress (deflate level 1)',
      compressed,
      'put',
      TEXT_BYTES,
    );
    if (!tools.rsync) return;
    const choice = rsyncCompressChoice();
    const rsync = await best(
      () =>
        rsyncPut(text, join(shm, 'text'), false, ['-z', ...(choice ? [`--compress-choice=${choice}`] : [])]),
      true,
    );
    if (!rsync) {
      context.note('rsync daemon could not be started; the compressed text case has no peer.');
      return;
    }
    recordPeer(
      context,
      CASE_TEXT,
      `rsync -z${choice ? ` --compress-choice=${choice}` : ''} to a daemon`,
      rsync,
      TEXT_BYTES,
    );
    context.ratio({
      case: CASE_TEXT,
      label: 'sockit put --compress / rsync -z, throughput',
      value: rate(compressed, TEXT_BYTES) / rate(rsync, TEXT_BYTES),
      target: 1,
    });
    if (compressed.wireBytes && rsync.wireBytes) {
      context.ratio({
        case: CASE_TEXT,
        label: 'rsync -z bytes sent / sockit --compress wire bytes (above 1: sockit sends fewer)',
        value: rsync.wireBytes / compressed.wireBytes,
      });
    }
  } finally {
    await remove();
    await rm(text, { force: true });
  }
}

async function diskCases(
  context: BenchContext,
  disk: string,
  source: string,
  sha: Digests,
  tools: { rsync: boolean },
): Promise<void> {
  const { root, local, remove } = await makeRootAndLocal(disk);
  const ddOut = join(disk, 'dd.out');
  const dd = await best(async () => {
    await rm(ddOut, { force: true });
    syncDisks();
    const run = await timed('dd', [`if=${source}`, `of=${ddOut}`, 'bs=1M', 'conv=fsync']);
    return { seconds: run.seconds };
  });
  await rm(ddOut, { force: true });
  recordPeer(context, CASE_DISK_PUT, 'dd conv=fsync (local copy)', dd);

  const put = await best(async () => {
    syncDisks();
    return sockitPut(source, root, 'put.bin', sha);
  });
  recordSockit(context, CASE_DISK_PUT, 'sockit put (xxh64 verified, fsync)', put, 'put');
  const get = await best(async () => {
    syncDisks();
    return sockitGet(root, 'put.bin', join(local, 'got.bin'), sha);
  });
  recordSockit(context, CASE_DISK_GET, 'sockit get (xxh64 verified, fsync)', get, 'get');
  context.ratio({
    case: CASE_DISK_PUT,
    label: 'sockit put / dd conv=fsync',
    value: rate(put) / rate(dd),
    target: 0.9,
  });
  context.ratio({
    case: CASE_DISK_GET,
    label: 'sockit get / dd conv=fsync',
    value: rate(get) / rate(dd),
    target: 0.9,
  });

  if (tools.rsync) {
    const fsync = rsyncHasFsync();
    if (!fsync) context.note('this rsync has no --fsync (added in 3.2.4): it runs without it.');
    const rsync = await best(() => rsyncPut(source, disk, fsync), true);
    if (rsync) {
      recordPeer(context, CASE_DISK_PUT, `rsync${fsync ? ' --fsync' : ''} to an rsync daemon`, rsync);
      context.ratio({
        case: CASE_DISK_PUT,
        label: 'sockit put / rsync',
        value: rate(put) / rate(rsync),
        target: 1,
      });
    } else {
      context.note('rsync daemon could not be started; its case is skipped.');
    }
  }
  await remove();
}

/** Creates `dir/root` (the served root) and `dir/local` (the client's side); `remove` deletes both. */
async function makeRootAndLocal(
  dir: string,
): Promise<{ root: string; local: string; remove: () => Promise<void> }> {
  const root = join(dir, 'root');
  const local = join(dir, 'local');
  await mkdir(root, { recursive: true });
  await mkdir(local, { recursive: true });
  return {
    root,
    local,
    async remove() {
      await rm(root, { recursive: true, force: true });
      await rm(local, { recursive: true, force: true });
    },
  };
}

async function pythonCase(context: BenchContext, shm: string): Promise<void> {
  const python = findPython();
  const text = join(shm, 'text.txt');
  const sha256 = await writeTextFile(text, PYTHON_BYTES);
  const root = join(shm, 'py-root');
  await mkdir(root);
  const sockit = await sockitPut(text, root, 'text.txt', await digestsOf(text));
  context.record({
    case: CASE_PYTHON,
    subject: 'sockit put (xxh64 verified)',
    value: round(rate(sockit, PYTHON_BYTES)),
    unit: 'MB/s',
    extra: { seconds: round(sockit.seconds, 3) },
  });
  if (!python) {
    context.note(
      'python3 not found: the seed line-by-line transfer is skipped (set PYTHON=/path/to/python3).',
    );
    return;
  }
  const out = join(shm, 'py.out');
  const server = spawn(python.path, [join(PEERS, 'file_server.py'), '127.0.0.1', '0', out, '--once'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let printed = '';
      server.stdout!.on('data', (chunk: Buffer) => {
        printed += chunk.toString('utf8');
        const match = /^ready (\d+)$/m.exec(printed);
        if (match) resolve(Number(match[1]));
      });
      server.once('exit', () => reject(new Error(`the seed server exited before it was ready: ${printed}`)));
    });
    const started = performance.now();
    const client = await timed(python.path, [join(PEERS, 'file_client.py'), '127.0.0.1', String(port), text]);
    await exited;
    const seconds = (performance.now() - started) / 1000;
    const received = createHash('sha256')
      .update(await readFile(out))
      .digest('hex');
    context.record({
      case: CASE_PYTHON,
      subject: 'python file_client.py -> file_server.py (seed)',
      value: round(PYTHON_BYTES / 1e6 / seconds),
      unit: 'MB/s',
      extra: {
        seconds: round(seconds, 3),
        verified: received === sha256 ? 'bytes equal' : 'DIFFERENT',
        exit: String(client.code),
      },
    });
    context.ratio({
      case: CASE_PYTHON,
      label: 'sockit put / seed Python',
      value: rate(sockit, PYTHON_BYTES) / (PYTHON_BYTES / 1e6 / seconds),
    });
  } catch (error) {
    context.note(`seed Python transfer: ${(error as Error).message}`);
  } finally {
    server.kill('SIGKILL');
    await rm(out, { force: true });
    await rm(root, { recursive: true, force: true });
  }
}

// ---- subjects --------------------------------------------------------------------------

/** `sockit put [flags]` of `source` into a fresh `sockit serve --files root`; checks the result. */
function sockitPut(
  source: string,
  root: string,
  name: string,
  sha: Digests,
  flags: string[] = [],
): Promise<Run> {
  return sockitTransfer(root, join(root, name), sha, (address) => [
    'put',
    '--json',
    ...flags,
    source,
    address,
    name,
  ]);
}

/** `sockit get [flags]` of `root/name` from a fresh server into `target`; checks the result. */
async function sockitGet(
  root: string,
  name: string,
  target: string,
  sha: Digests,
  flags: string[] = [],
): Promise<Run> {
  try {
    return await sockitTransfer(root, target, sha, (address) => [
      'get',
      '--json',
      ...flags,
      address,
      name,
      target,
    ]);
  } finally {
    await rm(target, { force: true });
  }
}

/**
 * One timed `sockit` CLI transfer (`cliArgs` given the server's address) with a fresh
 * `sockit serve --files root`: removes `stale` (the destination) first, measures both sides and
 * checks the CLI's hash.
 */
async function sockitTransfer(
  root: string,
  stale: string,
  sha: Digests,
  cliArgs: (address: string) => string[],
): Promise<Run> {
  const server = await startSockitServe({ extraArgs: ['--files', root] });
  try {
    await rm(stale, { force: true });
    const serverCpuBefore = cpuTimeMs(server.pid);
    const run = await timed(
      process.execPath,
      [REPORT_RSS, SOCKIT_CLI, ...cliArgs(`tcp://127.0.0.1:${server.port}`)],
      {
        env: { SOCKIT_TOKEN: server.token },
      },
    );
    const done = checkCli(run, sha);
    return {
      seconds: run.seconds,
      clientRss: run.maxRss,
      serverRss: memoryOf(server.pid)?.peakRss,
      transferSeconds: done.seconds,
      wireBytes: done.wireBytes,
      clientCpu: run.cpuSeconds,
      serverCpu: cpuSecondsSince(server.pid, serverCpuBefore),
    };
  } finally {
    await server.stop();
  }
}

/**
 * Returns the CLI's own transfer time and wire bytes, after checking it succeeded with the
 * source's digest in the checksum it names.
 */
function checkCli(run: TimedRun, sha: Digests): { seconds?: number; wireBytes?: number } {
  if (run.code !== 0) throw new Error(`sockit exited ${run.code}: ${run.stderr}`);
  const result: { seconds?: number; wireBytes?: number } = {};
  let verified = false;
  for (const line of run.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const event = JSON.parse(line) as {
      event: string;
      checksum?: ChecksumName;
      digest?: string;
      seconds?: number;
      wireBytes?: number;
    };
    if (event.event === 'done') {
      verified = event.checksum !== undefined && event.digest === sha[event.checksum];
      if (event.wireBytes !== undefined) result.wireBytes = event.wireBytes;
    }
    if (event.event === 'end' && event.seconds !== undefined) result.seconds = event.seconds;
  }
  if (!verified) throw new Error(`sockit reported a different digest: ${run.stdout}`);
  return result;
}

/** `ncat -l --recv-only > out` and `ncat --send-only < source`: until the receiver has written it all. */
async function ncatPipe(source: string, out: string): Promise<Run> {
  const port = await freePort();
  return pipePair(
    'ncat',
    ['-v', '-l', '--recv-only', '127.0.0.1', String(port)],
    /Listening on/,
    ['--send-only', '127.0.0.1', String(port)],
    source,
    out,
  );
}

/** `socat -u TCP-LISTEN → file` and `socat -u file → TCP`. */
async function socatPipe(source: string, out: string): Promise<Run> {
  const port = await freePort();
  return pipePair(
    'socat',
    ['-d', '-d', '-u', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, `CREATE:${out}`],
    /listening on/,
    ['-u', `OPEN:${source}`, `TCP:127.0.0.1:${port}`],
    undefined,
    undefined,
  );
}

/**
 * A listener and a sender of `tool`, each under `/usr/bin/time` so their CPU seconds are
 * measured the way the sockit processes' are (user + system of the whole process): the
 * sender's as `clientCpu`, the receiver's as `serverCpu`.
 */
async function pipePair(
  tool: string,
  listenArgs: string[],
  ready: RegExp,
  sendArgs: string[],
  stdinFile: string | undefined,
  stdoutFile: string | undefined,
): Promise<Run> {
  const cpuDir = await mkdtemp(join(tmpdir(), 'sockit-bench-cpu-'));
  const receiverCpu = join(cpuDir, 'receiver');
  const senderCpu = join(cpuDir, 'sender');
  const outFd = stdoutFile ? openSync(stdoutFile, 'w') : undefined;
  // Its own process group, so a stuck listener is killed with `time`, not orphaned.
  const receiver = spawn(TIME, ['-f', '%U %S', '-o', receiverCpu, tool, ...listenArgs], {
    stdio: ['ignore', outFd ?? 'ignore', 'pipe'],
    detached: true,
  });
  if (outFd !== undefined) closeSync(outFd);
  try {
    const received = new Promise<number | null>((resolve) => receiver.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      let text = '';
      receiver.stderr!.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (ready.test(text)) resolve();
      });
      receiver.once('exit', () => reject(new Error(`${tool} listener exited: ${text}`)));
    });
    const started = performance.now();
    const sender = await timed(TIME, ['-f', '%U %S', '-o', senderCpu, tool, ...sendArgs], {
      ...(stdinFile ? { stdinFile } : {}),
    });
    if (sender.code !== 0) throw new Error(`${tool} sender exited ${sender.code}: ${sender.stderr}`);
    const code = await received;
    if (code !== 0) throw new Error(`${tool} receiver exited ${code}`);
    const seconds = (performance.now() - started) / 1000;
    const clientCpu = timeCpu(senderCpu);
    const serverCpu = timeCpu(receiverCpu);
    return {
      seconds,
      ...(clientCpu === undefined ? {} : { clientCpu }),
      ...(serverCpu === undefined ? {} : { serverCpu }),
    };
  } finally {
    if (receiver.exitCode === null && receiver.pid !== undefined) {
      try {
        process.kill(-receiver.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(cpuDir, { recursive: true, force: true });
  }
}

/** `/usr/bin/time`: GNU time, whose -f/-o give a child's user and system seconds. */
const TIME = '/usr/bin/time';

/** The user + system seconds `/usr/bin/time -f '%U %S' -o file` wrote, or undefined. */
function timeCpu(file: string): number | undefined {
  try {
    const match = /([\d.]+) ([\d.]+)\s*$/.exec(readFileSync(file, 'utf8'));
    return match ? Number(match[1]) + Number(match[2]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `rsync [--fsync] [flags] --stats source rsync://127.0.0.1:PORT/bench/` to a daemon started
 * for it; `wireBytes` is what its statistics say it sent.
 */
async function rsyncPut(source: string, disk: string, fsync: boolean, flags: string[] = []): Promise<Run> {
  const dest = join(disk, 'rsync-dest');
  await rm(dest, { recursive: true, force: true });
  await mkdir(dest);
  const port = await freePort();
  const config = join(disk, 'rsyncd.conf');
  const ids = process.getuid?.() === 0 ? 'uid = 0\ngid = 0\n' : '';
  await writeFile(config, `use chroot = false\n${ids}[bench]\n  path = ${dest}\n  read only = false\n`);
  const daemon = spawn(
    'rsync',
    [
      '--daemon',
      '--no-detach',
      `--config=${config}`,
      `--port=${port}`,
      '--address=127.0.0.1',
      `--log-file=${join(disk, 'rsyncd.log')}`,
    ],
    { stdio: 'ignore' },
  );
  try {
    await waitListening(port);
    syncDisks();
    const run = await timed('rsync', [
      ...(fsync ? ['--fsync'] : []),
      ...flags,
      '--stats',
      source,
      `rsync://127.0.0.1:${port}/bench/`,
    ]);
    if (run.code !== 0) throw new Error(`rsync exited ${run.code}: ${run.stderr}`);
    const sent = /Total bytes sent: ([\d,]+)/.exec(run.stdout)?.[1];
    return { seconds: run.seconds, ...(sent ? { wireBytes: Number(sent.replaceAll(',', '')) } : {}) };
  } finally {
    daemon.kill('SIGTERM');
    await rm(dest, { recursive: true, force: true });
  }
}

// ---- helpers ---------------------------------------------------------------------------

interface TimedRun {
  code: number | null;
  seconds: number;
  stdout: string;
  stderr: string;
  /** Bytes, when the child printed `MAXRSS <KiB>` (see REPORT_RSS). */
  maxRss?: number;
  /** CPU seconds, when the child printed `CPU <µs>`. */
  cpuSeconds?: number;
}

/** Runs a command to its end and times it; stdin can come from a file. */
function timed(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdinFile?: string } = {},
): Promise<TimedRun> {
  const inFd = options.stdinFile ? openSync(options.stdinFile, 'r') : undefined;
  const started = performance.now();
  const child = spawn(command, args, {
    env: { ...process.env, ...options.env },
    stdio: [inFd ?? 'ignore', 'pipe', 'pipe'],
  });
  if (inFd !== undefined) closeSync(inFd);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    if (stdout.length < 1_000_000) stdout += chunk.toString('utf8');
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderr.length < 100_000) stderr += chunk.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      const usage = /MAXRSS (\d+) CPU (\d+)/.exec(stderr);
      resolve({
        code,
        seconds,
        stdout,
        stderr,
        ...(usage ? { maxRss: Number(usage[1]) * 1024, cpuSeconds: Number(usage[2]) / 1e6 } : {}),
      });
    });
  });
}

/** Runs a subject RUNS times and keeps the fastest run (with its peak memory figures). */
async function best(subject: () => Promise<Run>): Promise<Run>;
async function best(subject: () => Promise<Run>, optional: true): Promise<Run | undefined>;
async function best(subject: () => Promise<Run>, optional = false): Promise<Run | undefined> {
  let fastest: Run | undefined;
  for (let i = 0; i < RUNS; i++) {
    let run: Run;
    try {
      run = await subject();
    } catch (error) {
      if (optional) return undefined;
      throw error;
    }
    if (!fastest || run.seconds < fastest.seconds) {
      fastest = {
        ...run,
        clientRss: Math.max(run.clientRss ?? 0, fastest?.clientRss ?? 0) || undefined,
        serverRss: Math.max(run.serverRss ?? 0, fastest?.serverRss ?? 0) || undefined,
      };
    }
  }
  return fastest;
}

function rate(run: Run, bytes = FILE_BYTES): number {
  return bytes / 1e6 / run.seconds;
}

/** The CPU-seconds per GiB of one side of a sockit run: the client's for the put sender, and so on. */
function cpuOf(
  run: Run,
  verb: 'put' | 'get',
  role: 'sender' | 'receiver',
  bytes = FILE_BYTES,
): number | undefined {
  const client = (verb === 'put') === (role === 'sender');
  const seconds = client ? run.clientCpu : run.serverCpu;
  return seconds === undefined ? undefined : (seconds * GiB) / bytes;
}

/** CPU-seconds per GiB as a table cell. */
function perGiB(seconds: number | undefined, bytes: number): string | number {
  return seconds === undefined ? 'n/a' : round((seconds * GiB) / bytes, 2);
}

function recordSockit(
  context: BenchContext,
  name: string,
  subject: string,
  run: Run,
  verb: 'put' | 'get',
  bytes = FILE_BYTES,
): void {
  const mb = (value: number | undefined): string | number =>
    value === undefined ? 'n/a' : round(value / 1e6);
  context.record({
    case: name,
    subject,
    value: round(rate(run, bytes)),
    unit: 'MB/s',
    extra: {
      seconds: round(run.seconds, 2),
      'MB/s in transfer': run.transferSeconds ? round(bytes / 1e6 / run.transferSeconds) : 'n/a',
      'client peak RSS MB': mb(run.clientRss),
      'server peak RSS MB': mb(run.serverRss),
      'sender CPU s/GiB': perGiB(cpuOf(run, verb, 'sender', GiB), bytes),
      'receiver CPU s/GiB': perGiB(cpuOf(run, verb, 'receiver', GiB), bytes),
      'wire MB': mb(run.wireBytes),
    },
  });
  for (const [side, peak] of [
    ['client', run.clientRss],
    ['server', run.serverRss],
  ] as const) {
    if (peak !== undefined) {
      context.ratio({
        case: name,
        label: `128 MB / ${side} peak RSS`,
        value: (128 * 1e6) / peak,
        target: 1,
      });
    }
  }
}

/** A peer's run: `clientCpu` is its sender's, `serverCpu` its receiver's. */
function recordPeer(
  context: BenchContext,
  name: string,
  subject: string,
  run: Run,
  bytes = FILE_BYTES,
): void {
  context.record({
    case: name,
    subject,
    value: round(rate(run, bytes)),
    unit: 'MB/s',
    extra: {
      seconds: round(run.seconds, 2),
      'sender CPU s/GiB': perGiB(run.clientCpu, bytes),
      'receiver CPU s/GiB': perGiB(run.serverCpu, bytes),
      ...(run.wireBytes === undefined ? {} : { 'wire MB': round(run.wireBytes / 1e6) }),
    },
  });
}

/** Text the seed can carry: lines well under its 1024-byte recv, none of them `quit`. */
async function writeTextFile(path: string, size: number): Promise<string> {
  const lines: string[] = [];
  let bytes = 0;
  const random = Buffer.allocUnsafe(57);
  while (bytes < size) {
    randomFillSync(random);
    const line = `${random.toString('base64')}\n`;
    const piece = bytes + line.length > size ? `${'x'.repeat(Math.max(0, size - bytes - 1))}\n` : line;
    lines.push(piece);
    bytes += piece.length;
  }
  const text = lines.join('');
  await writeFile(path, text);
  return createHash('sha256').update(text).digest('hex');
}

function hasTool(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function rsyncHasFsync(): boolean {
  try {
    return execFileSync('rsync', ['--help'], { encoding: 'utf8', timeout: 10_000 }).includes('--fsync');
  } catch {
    return false;
  }
}

function isTmpfs(path: string): boolean {
  try {
    return statfsSync(path).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** Flushes earlier dirty pages so one case does not pay for the writes of the one before. */
function syncDisks(): void {
  try {
    execFileSync('sync', [], { stdio: 'ignore', timeout: 60_000 });
  } catch {
    // not fatal: the figures are just noisier
  }
}

function cpuSecondsSince(pid: number, beforeMs: number | undefined): number | undefined {
  const after = cpuTimeMs(pid);
  return after === undefined || beforeMs === undefined ? undefined : (after - beforeMs) / 1000;
}

/** SHA-256 of data already in memory, on one core: the ceiling of any verified transfer here. */
function sha256Rate(): number {
  const block = randomFillSync(Buffer.allocUnsafe(4 * MiB));
  const hash = createHash('sha256');
  const started = performance.now();
  for (let i = 0; i < 256; i++) hash.update(block);
  hash.digest();
  return (256 * 4 * MiB) / 1e6 / ((performance.now() - started) / 1000);
}

/** The source file's digest in every checksum the CLI may report. */
async function digestsOf(path: string): Promise<Digests> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const sums = await Promise.all(CHECKSUMS.map((name) => createChecksum(name)));
    for await (const chunk of readChunks(handle, 0, size, 4 * MiB)) {
      for (const sum of sums) sum.update(chunk);
    }
    return Object.fromEntries(sums.map((sum) => [sum.name, sum.digest()])) as Digests;
  } finally {
    await handle.close();
  }
}

/**
 * `size` bytes of log lines (a time stamp, a level, a path, numbers), every one different:
 * what `--compress` is for. deflate makes them about 4× smaller.
 */
async function writeLogText(path: string, size: number): Promise<void> {
  const levels = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
  const paths = ['/api/v1/items', '/api/v1/users', '/healthz', '/static/app.js', '/api/v2/orders'];
  const handle = await open(path, 'w');
  try {
    let written = 0;
    let line = 0;
    let seed = 12345;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    while (written < size) {
      const lines: string[] = [];
      let bytes = 0;
      while (bytes < 4 * MiB) {
        const ms = line * 7;
        const text =
          `2026-12-01T${String(Math.floor(ms / 3_600_000) % 24).padStart(2, '0')}:` +
          `${String(Math.floor(ms / 60_000) % 60).padStart(2, '0')}:${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}.` +
          `${String(ms % 1000).padStart(3, '0')}Z ${levels[next() % levels.length]} req=${next().toString(16)} ` +
          `GET ${paths[next() % paths.length]}?page=${next() % 500} status=200 bytes=${next() % 100_000} ` +
          `took=${(next() % 10_000) / 100}ms user=u${next() % 5000}\n`;
        lines.push(text);
        bytes += text.length;
        line++;
      }
      const block = Buffer.from(lines.join(''), 'latin1').subarray(0, size - written);
      await handle.write(block, 0, block.length, written);
      written += block.length;
    }
  } finally {
    await handle.close();
  }
}

/** The best compression this rsync offers for `-z`: zstd where it has it, else its default. */
function rsyncCompressChoice(): string | undefined {
  try {
    const version = execFileSync('rsync', ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const list = /Compress list:\s*\n\s*(.*)/.exec(version)?.[1] ?? '';
    return list.split(/\s+/).includes('zstd') ? 'zstd' : undefined;
  } catch {
    return undefined;
  }
}
