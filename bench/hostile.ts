/**
 * The hostile suite (`npm run bench -- hostile`): a `sockit serve` child with its default limits
 * against peers that attack its limits, each case bounded to about 20 s and to loopback:
 *
 * - slow loris: 10,000 clients drip their `hello` one byte every 2 s (never its last byte); a
 *   fresh client connects every 250 ms from the start of their ramp until 11 s after the last
 *   one arrived. Before the fixed handshake deadline the drippers kept every fresh client at
 *   BUSY; now each is cut 10 s after its accept. Run with the default cap (10,000: the drippers
 *   would fill it) and a cap above them. Reported: the fresh clients' handshake latency (p50,
 *   ms), their BUSY answers, the most drippers connected at once, and the ratio to the idle
 *   latency. The drippers run in this process, the server in a child: each has its own
 *   descriptors.
 * - refused holders: `--max-connections 50`, then 10,000 clients that are refused and keep their
 *   end open. Reported: the server's peak descriptors (/proc/PID/fd).
 * - 16 MiB announcements: 1,000 unauthenticated clients announce a 16 MiB `hello` (and 1,000 a
 *   16 MiB `echo`, an open service) and send all but its last byte. Reported: the server's
 *   peak RSS against its RSS before.
 * - fuzz: the fuzz test's random frames (test/server/fuzz-frames.ts), authenticated, counted by
 *   outcome (connection lived, or closed with which code).
 */
import { readdirSync } from 'node:fs';
import net from 'node:net';
import fc from 'fast-check';
import { connect } from '../src/client/client.js';
import { SockitError } from '../src/errors.js';
import { encodeFrameToBuffer } from '../src/protocol/frame.js';
import { frameArb, poke } from '../test/server/fuzz-frames.js';
import { memoryOf } from './lib/proc.js';
import { startSockitServe } from './lib/servers.js';
import { median, round } from './lib/stats.js';
import type { BenchContext, BenchSuite } from './report.js';

const MiB = 1024 * 1024;
const DRIPPERS = Number(process.env.SOCKIT_BENCH_DRIPPERS ?? 10_000);
const HOLDERS = Number(process.env.SOCKIT_BENCH_HOLDERS ?? 10_000);
const ANNOUNCERS = Number(process.env.SOCKIT_BENCH_ANNOUNCERS ?? 1_000);
const FUZZ_POKES = Number(process.env.SOCKIT_BENCH_FUZZ_POKES ?? 2_000);

/** Opens `count` TCP sockets to `port` in waves, so the listen backlog is not what is measured. */
async function openMany(
  port: number,
  count: number,
  setup: (socket: net.Socket) => void,
): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  for (let done = 0; done < count; ) {
    const wave = Math.min(500, count - done);
    const opened = await Promise.all(
      Array.from(
        { length: wave },
        () =>
          new Promise<net.Socket>((resolve) => {
            const socket = net.connect({ host: '127.0.0.1', port });
            socket.on('error', () => {});
            socket.once('connect', () => {
              setup(socket);
              resolve(socket);
            });
            socket.once('close', () => resolve(socket));
          }),
      ),
    );
    sockets.push(...opened);
    done += wave;
  }
  return sockets;
}

/** One fresh authenticated handshake: its latency in ms, or the error code it got. */
async function freshHandshake(port: number, token: string): Promise<number | string> {
  const started = performance.now();
  try {
    const client = await connect(`tcp://127.0.0.1:${port}`, {
      token,
      connectTimeoutMs: 5000,
      stateDir: process.env.SOCKIT_STATE_DIR,
    });
    const ms = performance.now() - started;
    await client.close();
    return ms;
  } catch (error) {
    return error instanceof SockitError ? error.code : String(error);
  }
}

function descriptors(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/**
 * 10,000 drippers against one server. With `cap` at the default 10,000 they fill it, and what
 * counts is when fresh clients are served again (the handshake deadline cuts the drippers); with
 * a cap above them, the fresh clients' latency while all of them are connected and dripping.
 */
async function slowLoris(context: BenchContext, cap: number): Promise<void> {
  const name = `fresh handshakes while ${DRIPPERS} clients drip their hello (--max-connections ${cap})`;
  const server = await startSockitServe({ extraArgs: ['--max-connections', String(cap)] });
  try {
    const idle: number[] = [];
    for (let i = 0; i < 20; i++) {
      const result = await freshHandshake(server.port, server.token);
      if (typeof result === 'number') idle.push(result);
    }
    const hello = encodeFrameToBuffer({ type: 'hello', version: 1, client: 'slow-loris-dripper' });
    let opened = 0;
    let cut = 0;
    let peakLive = 0;
    const drippers: net.Socket[] = [];
    let at = 1;
    const drip = setInterval(() => {
      for (const socket of drippers) if (!socket.destroyed) socket.write(hello.subarray(at, at + 1));
      at = Math.min(at + 1, hello.length - 1); // never the last byte
    }, 2000);
    // Fresh clients from the start of the ramp until 11 s after the last dripper arrived (past
    // the 10 s handshake deadline of every one).
    const served: number[] = [];
    const refused = new Map<string, number>();
    let lastArrival: number | undefined;
    const fresh = (async () => {
      while (lastArrival === undefined || performance.now() - lastArrival < 11_000) {
        const result = await freshHandshake(server.port, server.token);
        if (typeof result === 'number') served.push(result);
        else refused.set(result, (refused.get(result) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const started = performance.now();
    drippers.push(
      ...(await openMany(server.port, DRIPPERS, (socket) => {
        opened++;
        peakLive = Math.max(peakLive, opened - cut);
        socket.write(hello.subarray(0, 1));
        socket.resume(); // read (and drop) what the server says, so its close is seen here
        socket.once('close', () => cut++);
      })),
    );
    lastArrival = performance.now();
    const openedS = (lastArrival - started) / 1000;
    await fresh;
    clearInterval(drip);
    for (const socket of drippers) socket.destroy();
    const p50 = median(served) ?? Number.NaN;
    const idleP50 = median(idle) ?? Number.NaN;
    context.record({
      case: name,
      subject: 'sockit',
      value: round(p50, 1),
      unit: 'ms p50',
      extra: {
        served: served.length,
        refused: [...refused].map(([code, n]) => `${code}×${n}`).join(' ') || 'none',
        'drippers opened in s': round(openedS, 1),
        'peak drippers connected at once': peakLive,
        'drippers cut by the server': cut,
        'idle p50 ms': round(idleP50, 1),
      },
    });
    context.ratio({
      case: name,
      label: 'idle / under drip handshake latency',
      value: round(idleP50 / p50, 2),
    });
  } finally {
    await server.stop();
  }
}

async function refusedHolders(context: BenchContext): Promise<void> {
  const limit = 50;
  const server = await startSockitServe({ extraArgs: ['--max-connections', String(limit)] });
  try {
    const base = descriptors(server.pid);
    const admitted = await openMany(server.port, limit, () => {});
    let peak = descriptors(server.pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, descriptors(server.pid));
    }, 50);
    const holders = await openMany(server.port, HOLDERS, (socket) => {
      socket.allowHalfOpen = true; // never close our side
    });
    const answer = await freshHandshake(server.port, server.token);
    clearInterval(sampler);
    peak = Math.max(peak, descriptors(server.pid));
    for (const socket of [...holders, ...admitted]) socket.destroy();
    context.record({
      case: `descriptors with ${HOLDERS} refused holders (--max-connections ${limit})`,
      subject: 'sockit',
      value: peak,
      unit: 'fds peak',
      extra: { 'fds before': base, 'a fresh client got': typeof answer === 'number' ? 'served' : answer },
    });
  } finally {
    await server.stop();
  }
}

async function announcements(context: BenchContext, type: 'hello' | 'echo'): Promise<void> {
  const server = await startSockitServe();
  try {
    const before = memoryOf(server.pid)?.rss ?? 0;
    const header = Buffer.from(JSON.stringify({ type, version: 1, id: 1, size: 16 * MiB }));
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(header.length);
    const body = Buffer.alloc(16 * MiB - 1); // one buffer shared by every write: no copy per client
    const hello = encodeFrameToBuffer({ type: 'hello', version: 1 });
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, memoryOf(server.pid)?.rss ?? 0);
    }, 50);
    const codes = new Map<string, number>();
    const sockets = await openMany(server.port, ANNOUNCERS, (socket) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.once('close', () => {
        const code = /"code":"([A-Z_]+)"/.exec(text)?.[1] ?? 'none';
        codes.set(code, (codes.get(code) ?? 0) + 1);
      });
      // echo is an open service: it is announced after hello, before any auth.
      socket.write(
        type === 'hello' ? Buffer.concat([prefix, header]) : Buffer.concat([hello, prefix, header]),
      );
      socket.write(body);
    });
    const deadline = performance.now() + 15_000;
    while (sockets.some((socket) => !socket.destroyed) && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    clearInterval(sampler);
    peak = Math.max(peak, memoryOf(server.pid)?.rss ?? 0);
    for (const socket of sockets) socket.destroy();
    context.record({
      case: `server RSS, ${ANNOUNCERS} unauthenticated 16 MiB "${type}" announcements`,
      subject: 'sockit',
      value: round(peak / MiB, 1),
      unit: 'MiB peak RSS',
      extra: {
        'RSS before MiB': round(before / MiB, 1),
        answers: [...codes].map(([code, n]) => `${code}×${n}`).join(' '),
      },
    });
  } finally {
    await server.stop();
  }
}

async function fuzz(context: BenchContext): Promise<void> {
  const server = await startSockitServe();
  try {
    const batches = fc.sample(fc.array(frameArb, { minLength: 1, maxLength: 6 }), {
      numRuns: FUZZ_POKES,
      seed: 9,
    });
    const outcomes = new Map<string, number>();
    let frames = 0;
    const started = performance.now();
    for (let i = 0; i < batches.length; i += 20) {
      const results = await Promise.all(
        batches.slice(i, i + 20).map((batch) => {
          frames += batch.length;
          return poke(server.port, batch, true, server.token);
        }),
      );
      for (const result of results) {
        const key = result.survived ? 'lived' : `closed ${result.codes.at(-1) ?? 'silently'}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      if (performance.now() - started > 20_000) break;
    }
    const alive = await freshHandshake(server.port, server.token);
    context.record({
      case: 'fuzzed frames (authenticated, echo-only server, the fuzz test frame types and fields)',
      subject: 'sockit',
      value: frames,
      unit: 'frames',
      extra: {
        connections: [...outcomes.values()].reduce((a, b) => a + b, 0),
        outcomes: [...outcomes].map(([key, n]) => `${key}×${n}`).join(', '),
        'served after': typeof alive === 'number' ? 'yes' : alive,
      },
    });
  } finally {
    await server.stop();
  }
}

export const hostileSuite: BenchSuite = {
  name: 'hostile',
  async run(context) {
    await slowLoris(context, 10_000);
    await slowLoris(context, 20_000);
    await refusedHolders(context);
    await announcements(context, 'hello');
    await announcements(context, 'echo');
    await fuzz(context);
  },
};
