/**
 * The tunnel suite: `sockit tunnel -L` over tls:// against `ssh -L` through an sshd on loopback,
 * in the same run.
 *
 * - bulk: SOCKIT_BENCH_TUNNEL_MIB (default 1024) MiB through one tunnelled connection, from the
 *   forward suite's in-process sender to its in-process sink. sshd (/usr/sbin/sshd) is started
 *   here on a free port with a generated host key and user key in a temp dir, cipher
 *   aes128-gcm@openssh.com; sockit serves tls:// with its self-signed certificate.
 * - 20 streams at once, SOCKIT_BENCH_TUNNEL_STREAM_MIB (default 25) MiB each: aggregate MiB/s
 *   and fairness (the slowest stream's rate / the fastest's) for both.
 *
 * sshd comes from bench/lib/sshd.ts (a private one on a free port, keys in a temp dir).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { send, startSink } from './lib/bulk-load.js';
import { removeOnExit, startServerChild } from './lib/children.js';
import { freePort } from './lib/ports.js';
import { treeCpuTimeMs } from './lib/proc.js';
import { SOCKIT_CLI } from './lib/servers.js';
import { hasSshd, startSshd } from './lib/sshd.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const BULK_BYTES = Number(process.env.SOCKIT_BENCH_TUNNEL_MIB ?? 1024) * MiB;
const STREAMS = 20;
const STREAM_BYTES = Number(process.env.SOCKIT_BENCH_TUNNEL_STREAM_MIB ?? 25) * MiB;

const BULK_CASE = `tunnel -L ${BULK_BYTES / MiB} MiB (sockit over tls://, ssh aes128-gcm)`;
const MANY_CASE = `tunnel -L ${STREAMS} streams × ${STREAM_BYTES / MiB} MiB`;

/** A tunnel entrance: a local port whose connections come out at `target`, and its children. */
interface Tunnel {
  port: number;
  /** CPU milliseconds each end (server, client; their children included) used so far. */
  cpuMs(): [server: number, client: number];
  stop(): Promise<void>;
}

/** CPU time of the server's and the client's process trees, for `Tunnel.cpuMs`. */
function cpuOf(server: number, client: number): () => [number, number] {
  return () => [treeCpuTimeMs(server) ?? Number.NaN, treeCpuTimeMs(client) ?? Number.NaN];
}

async function sockitTunnel(dir: string, target: number): Promise<Tunnel> {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'bench-token-not-secret\n', { mode: 0o600 });
  const env = { SOCKIT_STATE_DIR: dir, HOME: dir };
  const server = await startServerChild({
    name: 'sockit serve (tunnel)',
    command: process.execPath,
    args: [
      SOCKIT_CLI,
      'serve',
      'tls://127.0.0.1:0',
      '--token-file',
      tokenFile,
      '--state-dir',
      dir,
      '--log-level',
      'warn',
      '--tunnel-allow',
      `127.0.0.1:${target}`,
    ],
    readyPattern: /tls:\/\/127\.0\.0\.1:(\d+)/,
    env,
  });
  try {
    const client = await startServerChild({
      name: 'sockit tunnel',
      command: process.execPath,
      args: [
        SOCKIT_CLI,
        'tunnel',
        `tls://127.0.0.1:${server.port}`,
        '--token-file',
        tokenFile,
        '--state-dir',
        dir,
        '-L',
        `0:127.0.0.1:${target}`,
      ],
      readyPattern: /-L listening on \S+:(\d+) /,
      env,
    });
    return {
      port: client.port,
      cpuMs: cpuOf(server.pid, client.pid),
      stop: async () => {
        await client.stop();
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

async function sshTunnel(_dir: string, target: number): Promise<Tunnel> {
  const sshd = await startSshd({
    config: ['AllowTcpForwarding yes', 'Ciphers aes128-gcm@openssh.com'],
  });
  try {
    const local = await freePort();
    const ssh = await startServerChild({
      name: 'ssh -L',
      command: 'ssh',
      args: [
        '-v',
        // -v (its "listening" line says when the forward is up) instead of the quiet LogLevel.
        ...withoutOption(sshd.sshArgs, 'LogLevel=ERROR'),
        '-o',
        'Ciphers=aes128-gcm@openssh.com',
        '-o',
        'ExitOnForwardFailure=yes',
        '-N',
        '-L',
        `127.0.0.1:${local}:127.0.0.1:${target}`,
        '127.0.0.1',
      ],
      env: sshd.env,
      readyPattern: /Local forwarding listening on 127\.0\.0\.1 port (\d+)/,
    });
    return {
      port: ssh.port,
      cpuMs: cpuOf(sshd.pid, ssh.pid),
      stop: async () => {
        await ssh.stop();
        await sshd.stop();
      },
    };
  } catch (error) {
    await sshd.stop();
    throw error;
  }
}

type Sink = Awaited<ReturnType<typeof startSink>>;

/** Sends `streams` connections of `bytes` each at once; seconds for all and for each. */
async function transfer(tunnel: Tunnel, sink: Sink, streams: number, bytes: number) {
  const cpuBefore = tunnel.cpuMs();
  const started = performance.now();
  const received = Promise.all(Array.from({ length: streams }, () => sink.next()));
  const each = await Promise.all(
    Array.from({ length: streams }, async () => {
      await send(tunnel.port, bytes);
      return (performance.now() - started) / 1000;
    }),
  );
  const totals = await received;
  const seconds = (performance.now() - started) / 1000;
  if (totals.some((total) => total !== bytes))
    throw new Error(`delivered ${totals.join(',')} of ${bytes} bytes each`);
  const cpuAfter = tunnel.cpuMs();
  const perGiB = (end: 0 | 1): number =>
    Number(((cpuAfter[end] - cpuBefore[end]) / 1000 / ((streams * bytes) / (1024 * MiB))).toFixed(3));
  return {
    seconds,
    each,
    cpuPerGiB: Number((perGiB(0) + perGiB(1)).toFixed(3)),
    server: perGiB(0),
    client: perGiB(1),
  };
}

async function measure(
  context: BenchContext,
  subject: string,
  open: (dir: string, target: number) => Promise<Tunnel>,
): Promise<{ bulk: number; many: number; bulkCpu: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'sockit-bench-tunnel-'));
  removeOnExit(dir);
  const sink = await startSink();
  let tunnel: Tunnel | undefined;
  try {
    tunnel = await open(dir, sink.port);
    const bulk = await transfer(tunnel, sink, 1, BULK_BYTES);
    const bulkRate = BULK_BYTES / MiB / bulk.seconds;
    context.record({
      case: BULK_CASE,
      subject,
      value: bulkRate,
      unit: 'MiB/s',
      extra: {
        seconds: Number(bulk.seconds.toFixed(3)),
        'CPU s/GiB (both ends)': bulk.cpuPerGiB,
        'server / client CPU s/GiB': `${bulk.server} / ${bulk.client}`,
      },
    });
    const many = await transfer(tunnel, sink, STREAMS, STREAM_BYTES);
    const manyRate = (STREAMS * STREAM_BYTES) / MiB / many.seconds;
    const fairness = Math.min(...many.each) / Math.max(...many.each);
    context.record({
      case: MANY_CASE,
      subject,
      value: manyRate,
      unit: 'MiB/s aggregate',
      extra: { fairness: Number(fairness.toFixed(3)), 'CPU s/GiB (both ends)': many.cpuPerGiB },
    });
    context.record({
      case: `${MANY_CASE} fairness (fastest time / slowest time)`,
      subject,
      value: fairness,
      unit: 'ratio',
    });
    return { bulk: bulkRate, many: manyRate, bulkCpu: bulk.cpuPerGiB };
  } finally {
    await tunnel?.stop();
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `args` without the pair `-o OPTION`. */
function withoutOption(args: readonly string[], option: string): string[] {
  const at = args.indexOf(option);
  return at > 0 && args[at - 1] === '-o' ? [...args.slice(0, at - 1), ...args.slice(at + 1)] : [...args];
}

export const tunnelSuite: BenchSuite = {
  name: 'tunnel',
  async run(context) {
    const sockit = await measure(context, 'sockit tunnel -L (tls://)', sockitTunnel);
    if (!hasSshd()) {
      context.note('ssh/sshd not installed: the ssh -L comparison was skipped');
      return;
    }
    const ssh = await measure(context, 'ssh -L (aes128-gcm)', sshTunnel);
    context.ratio({
      case: BULK_CASE,
      label: 'sockit / ssh -L MiB/s',
      value: sockit.bulk / ssh.bulk,
      target: 1.0,
    });
    // Wall time swings with the neighbours on a shared machine; CPU per GiB does not.
    context.ratio({
      case: BULK_CASE,
      label: 'ssh -L / sockit CPU-seconds per GiB (both ends)',
      value: ssh.bulkCpu / sockit.bulkCpu,
    });
    context.ratio({
      case: MANY_CASE,
      label: 'sockit / ssh -L aggregate MiB/s',
      value: sockit.many / ssh.many,
    });
  },
};
