/**
 * The sync suite: a tree of 10,000 files of 4 KiB (SOCKIT_BENCH_SYNC_FILES; 100 per directory,
 * random bytes) mirrored to tmpfs, a first sync into an empty destination and a second one with
 * nothing changed, each subject in the same run:
 *
 * - `sockit sync SRC ADDR:dst` (the built CLI) into `sockit serve --files`;
 * - `rsync -a SRC/ rsync://127.0.0.1:PORT/bench/` into an rsync daemon started here on a free
 *   port with a generated rsyncd.conf (the target: ≥ 1.0 × rsync on both runs);
 * - `tar c | ncat` into `ncat -l | tar x` (first sync only: tar has no "unchanged").
 *
 * Each subject runs SOCKIT_BENCH_SYNC_RUNS times (default 2), the best counts (other work on a
 * shared machine only slows a run down). CPU: the client's user+system from /proc as it is
 * reaped, and the server's (rsync's forked receivers are reaped by the daemon: its children's
 * time) from /proc. Every destination is checked to hold all the files.
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitListening } from './lib/ports.js';
import { SOCKIT_CLI, startSockitServe } from './lib/servers.js';
import { round } from './lib/stats.js';
import type { BenchContext, BenchSuite } from './report.js';

const FILES = Math.max(100, Number(process.env.SOCKIT_BENCH_SYNC_FILES ?? 10_000));
const RUNS = Math.max(1, Number(process.env.SOCKIT_BENCH_SYNC_RUNS ?? 2));
const FILE_BYTES = 4096;
const PER_DIR = 100;
/** One run may take this long before it is killed. */
const TIMEOUT_MS = 120_000;
const CASE_FIRST = `first sync ${FILES} × 4 KiB`;
const CASE_SECOND = `no-change sync ${FILES} × 4 KiB`;

/** One timed run: wall seconds and CPU seconds of the client and of the server side. */
interface Run {
  seconds: number;
  clientCpu: number;
  serverCpu: number;
}

/** A subject: given a fresh destination, its first and second sync. */
interface Subject {
  name: string;
  first(): Promise<Run>;
  second?(): Promise<Run>;
  /** Where the files land, checked after the first sync. */
  dest: string;
  stop(): Promise<void>;
}

export const syncSuite: BenchSuite = {
  name: 'sync',
  async run(context) {
    const base = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'sockit-bench-sync-'));
    const removeNow = (): void => rmSync(base, { recursive: true, force: true });
    process.once('exit', removeNow);
    try {
      const src = join(base, 'src');
      await makeTree(src);
      const results = new Map<string, { first: Run; second?: Run }>();
      for (const make of [sockitSubject, rsyncSubject, tarSubject]) {
        const best: { first?: Run; second?: Run } = {};
        let name = '';
        for (let run = 0; run < RUNS; run++) {
          const subject = await make(src, join(base, `dest-${run}`));
          name = subject.name;
          try {
            const first = await subject.first();
            await checkTree(subject.dest, subject.name);
            const second = subject.second ? await subject.second() : undefined;
            if (!best.first || first.seconds < best.first.seconds) best.first = first;
            if (second && (!best.second || second.seconds < best.second.seconds)) best.second = second;
          } finally {
            await subject.stop();
            await rm(join(base, `dest-${run}`), { recursive: true, force: true });
          }
        }
        record(context, CASE_FIRST, name, best.first!);
        if (best.second) record(context, CASE_SECOND, name, best.second);
        results.set(name, best as { first: Run; second?: Run });
      }
      const sockit = results.get('sockit sync')!;
      const rsync = results.get('rsync -a to an rsync daemon')!;
      const tar = results.get('tar c | ncat → ncat -l | tar x')!;
      context.ratio({
        case: CASE_FIRST,
        label: 'rsync s / sockit s',
        value: round(rsync.first.seconds / sockit.first.seconds, 2),
        target: 1,
      });
      context.ratio({
        case: CASE_FIRST,
        label: 'tar|ncat s / sockit s',
        value: round(tar.first.seconds / sockit.first.seconds, 2),
      });
      context.ratio({
        case: CASE_SECOND,
        label: 'rsync s / sockit s',
        value: round(rsync.second!.seconds / sockit.second!.seconds, 2),
        target: 1,
      });
      context.note('Wall time includes each client process starting (node ~50 ms, rsync and tar ~1 ms).');
    } finally {
      process.off('exit', removeNow);
      removeNow();
    }
  },
};

function record(context: BenchContext, name: string, subject: string, run: Run): void {
  context.record({
    case: name,
    subject,
    value: round(run.seconds, 3),
    unit: 's',
    extra: {
      'files/s': Math.round(FILES / run.seconds),
      'client CPU s': round(run.clientCpu, 2),
      'server CPU s': round(run.serverCpu, 2),
    },
  });
}

async function makeTree(src: string): Promise<void> {
  const data = Buffer.alloc(FILES * FILE_BYTES);
  randomFillSync(data);
  for (let dir = 0; dir * PER_DIR < FILES; dir++) {
    await mkdir(join(src, `d${dir}`), { recursive: true });
    const count = Math.min(PER_DIR, FILES - dir * PER_DIR);
    await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const at = (dir * PER_DIR + i) * FILE_BYTES;
        return writeFile(join(src, `d${dir}`, `f${i}`), data.subarray(at, at + FILE_BYTES));
      }),
    );
  }
}

/** Fails the run when the destination does not hold every file. */
async function checkTree(dest: string, subject: string): Promise<void> {
  const files = (await readdir(dest, { recursive: true, withFileTypes: true })).filter((entry) =>
    entry.isFile(),
  );
  if (files.length !== FILES) throw new Error(`${subject}: ${files.length} of ${FILES} files arrived`);
}

async function sockitSubject(src: string, dest: string): Promise<Subject> {
  await mkdir(dest, { recursive: true });
  const server = await startSockitServe({ extraArgs: ['--files', dest] });
  const once = async (): Promise<Run> => {
    const before = cpuMs(server.pid);
    const run = await timed(process.execPath, [SOCKIT_CLI, 'sync', src, `127.0.0.1:${server.port}:`], {
      SOCKIT_TOKEN: server.token,
    });
    return { ...run, serverCpu: (cpuMs(server.pid) - before) / 1000 };
  };
  return { name: 'sockit sync', first: once, second: once, dest, stop: () => server.stop() };
}

async function rsyncSubject(src: string, dest: string): Promise<Subject> {
  await mkdir(dest, { recursive: true });
  const port = await freePort();
  const config = join(dest, '..', `rsyncd-${port}.conf`);
  const ids = process.getuid?.() === 0 ? 'uid = 0\ngid = 0\n' : '';
  await writeFile(config, `use chroot = false\n${ids}[bench]\n  path = ${dest}\n  read only = false\n`);
  const daemon = spawn(
    'rsync',
    ['--daemon', '--no-detach', `--config=${config}`, `--port=${port}`, '--address=127.0.0.1'],
    {
      stdio: 'ignore',
    },
  );
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  await waitListening(port, () => (daemon.exitCode !== null ? 'the rsync daemon exited' : undefined));
  const once = async (): Promise<Run> => {
    const before = cpuMs(daemon.pid!);
    const run = await timed('rsync', ['-a', `${src}/`, `rsync://127.0.0.1:${port}/bench/`]);
    // The daemon forks a receiver per connection and reaps it when it sees SIGCHLD, shortly after
    // the client exits: only then does its time count among the daemon's children.
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { ...run, serverCpu: (cpuMs(daemon.pid!) - before) / 1000 };
  };
  return {
    name: 'rsync -a to an rsync daemon',
    first: once,
    second: once,
    dest,
    async stop() {
      daemon.kill('SIGTERM');
      await exited;
      await rm(config, { force: true });
    },
  };
}

async function tarSubject(src: string, dest: string): Promise<Subject> {
  await mkdir(dest, { recursive: true });
  return {
    name: 'tar c | ncat → ncat -l | tar x',
    dest,
    async first() {
      const port = await freePort();
      const receiver = spawn('sh', ['-c', `ncat -l 127.0.0.1 ${port} | tar x -C '${dest}'`], {
        stdio: 'ignore',
      });
      const received = new Promise<void>((resolve) => receiver.once('exit', () => resolve()));
      await waitListening(port, () => (receiver.exitCode !== null ? 'ncat -l exited' : undefined));
      const started = performance.now();
      const run = await timed('sh', ['-c', `tar c -C '${src}' . | ncat --send-only 127.0.0.1 ${port}`]);
      await received;
      // The receiver is done when tar x has written the last file: that is the end of the copy.
      return { ...run, seconds: (performance.now() - started) / 1000, serverCpu: 0 };
    },
    stop: async () => {},
  };
}

/** Runs a client to completion; its CPU (and its children's) is read as it is reaped. */
function timed(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Omit<Run, 'serverCpu'>> {
  const started = performance.now();
  // `sh -c 'cmd; cat /proc/$$/stat'` would be a second process; instead the shell's `times`
  // builtin prints the children's user and system time once the client has exited.
  const child = spawn('sh', ['-c', '"$@"; status=$?; times >&2; exit $status', 'sh', command, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 100_000) stderr += chunk.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) return reject(new Error(`${command} exited ${code}: ${stderr.slice(-2000)}`));
      // `times` prints two lines: the shell's own, then its children's: "0m0.120s 0m0.030s".
      const children = stderr.trim().split('\n').at(-1) ?? '';
      const clientCpu = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
        (sum, match) => sum + Number(match[1]) * 60 + Number(match[2]),
        0,
      );
      resolve({ seconds, clientCpu });
    });
  });
}

/** User + system CPU of `pid` and of its reaped children, in ms (Linux /proc). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the command name.
    return [11, 12, 13, 14].reduce((sum, at) => sum + Number(fields[at]), 0) * 10;
  } catch {
    return 0;
  }
}
