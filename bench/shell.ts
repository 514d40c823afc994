/**
 * The shell suite (issue 15), in the same run as its peers:
 * - keystroke echo latency (one byte in, its echo out, p50/p99): `sockit shell -tt` against
 *   `ssh -tt` to a private sshd on loopback, both sessions running `cat` in a remote pty, typed
 *   into in alternating batches (bench/lib/keystrokes.ts, bench/lib/sshd.ts);
 * - fan-out: `true` on 200 addresses, wall time, one `sockit exec --hosts FILE --par 50`
 *   process against `xargs -P 50` of one `sockit exec` process per address, against the same
 *   server (one in-process `serve()` on 200 loopback ports); and, where installed (Debian
 *   pssh), `parallel-ssh -p 50` with the same 200 hosts all naming one private sshd.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../src/server/server.js';
import { execService } from '../src/services/exec/index.js';
import { LatencyHistogram } from './lib/histogram.js';
import { type EchoSession, LETTERS, startEchoSession } from './lib/keystrokes.js';
import { SOCKIT_CLI, startSockitServe } from './lib/servers.js';
import { hasSshd, startSshd } from './lib/sshd.js';
import { median } from './lib/stats.js';
import type { BenchContext, BenchSuite } from './report.js';

/** Keystrokes per subject, typed in alternating batches of KEY_BATCH. */
const KEYSTROKES = Number(process.env.SOCKIT_BENCH_KEYSTROKES ?? 400);
const KEY_BATCH = 20;
const KEY_WARMUP = 20;
const KEY_CASE = 'keystroke echo through a remote pty (cat), 1 byte in, its echo out';
const SOCKIT_SHELL = 'sockit shell -tt (serve --allow-pty --shell-command cat)';
const SSH = 'ssh -tt to sshd on loopback (ForceCommand cat)';

const HOSTS = 200;
const PAR = 50;
/** Runs per subject, alternating (each xargs run starts 200 Node processes on a 2-core machine). */
const RUNS = Number(process.env.SOCKIT_BENCH_FLEET_RUNS ?? 2);
const CASE = `fan-out \`true\` to ${HOSTS} addresses, --par/-P ${PAR}, wall time`;
const FLEET = `sockit exec --hosts FILE --par ${PAR} (one process)`;
const XARGS = `xargs -P ${PAR} sockit exec ADDR -- true (one process per host)`;
const PSSH = `parallel-ssh -p ${PAR} -h FILE true (${HOSTS} host lines, one sshd on loopback)`;

export const shellSuite: BenchSuite = {
  name: 'shell',
  async run(context) {
    await measureKeystrokes(context);
    await measureFanOut(context);
  },
};

/** Echo latency of both clients, typed into alternately so that machine load hits both alike. */
async function measureKeystrokes(context: BenchContext): Promise<void> {
  if (!hasSshd()) {
    context.note(
      'sshd/ssh not installed (Debian openssh-server, openssh-client): keystroke echo not measured',
    );
    return;
  }
  const server = await startSockitServe({ extraArgs: ['--exec', '--allow-pty', '--shell-command', 'cat'] });
  const sshd = await startSshd({ forceCommand: 'cat' });
  const sessions: EchoSession[] = [];
  try {
    const subjects: { name: string; session: EchoSession; histogram: LatencyHistogram }[] = [];
    const sockitSession = await startEchoSession(
      SOCKIT_SHELL,
      process.execPath,
      [SOCKIT_CLI, 'shell', '-tt', `tcp://127.0.0.1:${server.port}`],
      { SOCKIT_TOKEN: server.token, TERM: 'dumb' },
    );
    sessions.push(sockitSession);
    subjects.push({ name: SOCKIT_SHELL, session: sockitSession, histogram: new LatencyHistogram() });
    const sshSession = await startEchoSession(SSH, 'ssh', ['-tt', ...sshd.sshArgs, '127.0.0.1'], {
      ...sshd.env,
      TERM: 'dumb',
    });
    sessions.push(sshSession);
    subjects.push({ name: SSH, session: sshSession, histogram: new LatencyHistogram() });
    let letter = 0;
    const typeBatch = async (session: EchoSession, count: number, histogram?: LatencyHistogram) => {
      for (let i = 0; i < count; i++) {
        const micros = await session.type(LETTERS[letter++ % LETTERS.length]!);
        histogram?.record(micros);
      }
    };
    for (const subject of subjects) await typeBatch(subject.session, KEY_WARMUP);
    for (let typed = 0; typed < KEYSTROKES; typed += KEY_BATCH) {
      for (const subject of subjects) await typeBatch(subject.session, KEY_BATCH, subject.histogram);
    }
    const p50: Record<string, number> = {};
    for (const subject of subjects) {
      const summary = subject.histogram.summary();
      p50[subject.name] = summary.p50;
      context.record({
        case: KEY_CASE,
        subject: subject.name,
        value: summary.p50,
        unit: 'µs p50',
        extra: { 'p99 µs': summary.p99, 'mean µs': Math.round(summary.mean), keystrokes: summary.count },
      });
    }
    context.ratio({
      case: KEY_CASE,
      label: `${SSH} p50 / ${SOCKIT_SHELL} p50 (>= 1 means sockit echoes at least as fast)`,
      value: p50[SSH]! / p50[SOCKIT_SHELL]!,
      target: 1,
    });
  } finally {
    for (const session of sessions) await session.stop();
    await sshd.stop();
    await server.stop();
  }
}

/** `true` on 200 addresses: one fleet process against one process per host. */
async function measureFanOut(context: BenchContext): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sockit-bench-shell-'));
  const token = 'bench-token-not-secret';
  const server = await serve({
    listen: Array.from({ length: HOSTS }, () => 'tcp://127.0.0.1:0'),
    token,
    stateDir: dir,
    services: [execService({ allow: ['true'], maxRunning: PAR + 14 })],
  });
  try {
    const addresses = server.addresses.map(
      (address) => `tcp://127.0.0.1:${(address as { port: number }).port}`,
    );
    const hostsFile = join(dir, 'hosts');
    writeFileSync(hostsFile, `${addresses.join('\n')}\n`);
    const env = { ...process.env, SOCKIT_TOKEN: token, SOCKIT_STATE_DIR: dir, XDG_CONFIG_HOME: dir };
    const fleet = (): Promise<number> =>
      timed(
        process.execPath,
        [SOCKIT_CLI, 'exec', '--hosts', hostsFile, '--par', String(PAR), '--json', '--', 'true'],
        env,
      );
    const xargs = (): Promise<number> =>
      timed(
        'sh',
        ['-c', `xargs -P ${PAR} -I{} "${process.execPath}" "${SOCKIT_CLI}" exec {} -- true < "${hostsFile}"`],
        env,
      );
    const pssh = which('parallel-ssh') ?? which('pssh');
    const sshd = pssh !== undefined && hasSshd() ? await startPsshTarget(dir) : undefined;
    const times: Record<string, number[]> = { [FLEET]: [], [XARGS]: [], ...(sshd ? { [PSSH]: [] } : {}) };
    try {
      for (let run = 0; run < RUNS; run++) {
        times[FLEET]!.push(await fleet());
        times[XARGS]!.push(await xargs());
        // Once: 200 ssh handshakes against one sshd take ~40 s on a 2-core machine.
        if (sshd && run === 0) times[PSSH]!.push(await timed(pssh!, sshd.args, { ...env, ...sshd.env }));
      }
    } finally {
      await sshd?.stop();
    }
    for (const [subject, values] of Object.entries(times)) {
      context.record({
        case: CASE,
        subject,
        value: Math.round(median(values)!),
        unit: 'ms',
        extra: { runs: values.length, all: values.map((value) => Math.round(value)).join('/') },
      });
    }
    context.ratio({
      case: CASE,
      label: `${XARGS} / ${FLEET} (times faster)`,
      value: median(times[XARGS]!)! / median(times[FLEET]!)!,
      target: 5,
    });
    if (sshd) {
      context.ratio({
        case: CASE,
        label: `${PSSH} / ${FLEET} (times faster)`,
        value: median(times[PSSH]!)! / median(times[FLEET]!)!,
      });
    } else {
      context.note(
        'parallel-ssh (Debian pssh) or sshd is not installed: the fan-out is compared with xargs -P only',
      );
    }
  } finally {
    await server.close(1000);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A private sshd for parallel-ssh and its arguments: 200 host lines naming it, 50 at once, the
 * bench's own key and known-hosts file (`-x` hands ssh the same options as the keystroke case).
 * MaxStartups is raised so that 50 handshakes at once are not dropped as a flood.
 */
async function startPsshTarget(
  dir: string,
): Promise<{ args: string[]; env: NodeJS.ProcessEnv; stop(): Promise<void> }> {
  const sshd = await startSshd({ config: ['MaxStartups 200:30:400'] });
  const hosts = join(dir, 'pssh-hosts');
  writeFileSync(hosts, `${Array.from({ length: HOSTS }, () => `127.0.0.1:${sshd.port}`).join('\n')}\n`);
  // -p PORT is in each host line; the rest of ssh's options go through -x.
  const sshOptions = sshd.sshArgs.filter((_arg, at, all) => all[at] !== '-p' && all[at - 1] !== '-p');
  return {
    args: ['-h', hosts, '-p', String(PAR), '-t', '0', '-x', sshOptions.join(' '), 'true'],
    env: sshd.env,
    stop: () => sshd.stop(),
  };
}

/** The path of an installed program, or undefined. */
function which(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, program))) return join(dir, program);
  }
  return undefined;
}

/** Wall time of one child run in ms; a failing run fails the suite. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 4000) stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${command} exited ${code}: ${stderr.slice(0, 500)}`));
    });
  });
}
