/**
 * The exec suite: round trips of `true` over one connection — sockit's exec service against the
 * seeds' Python remote-command server and a bare `child_process.spawn` loop — and the wall time
 * of a whole `sockit exec ADDR -- true` CLI run against `node -e 0`, all in the same run. A C
 * client and server with one byte each way per command (bench/lib/exec-floor.c) give the floor
 * any networked exec service meets on the machine; the same in Node, with sockit's spawner
 * (bench/lib/exec-node-floor.ts), the floor of one written in Node.
 *
 * Spawn rates swing from one second to the next on a small, shared machine, so the subjects run
 * in alternating small batches and the CLI runs alternate with `node -e 0`.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/client/client.js';
import { compileLoadProgram } from './lib/c-program.js';
import { runChild, startServerChild } from './lib/children.js';
import { findPython, SOCKIT_CLI, startSockitServe } from './lib/servers.js';
import { median } from './lib/stats.js';
import type { BenchContext, BenchSuite } from './report.js';

const SECONDS = Number(process.env.SOCKIT_BENCH_SECONDS ?? 2);
/** The in-process subjects share this window, in alternating batches of BATCH commands. */
const WINDOW_MS = SECONDS * 3 * 1000;
const BATCH = 20;
const WARMUP_COMMANDS = 50;
/** Whole-process runs per subject for the CLI wall time (interleaved). */
const CLI_RUNS = Number(process.env.SOCKIT_BENCH_CLI_RUNS ?? 20);

const PEERS = fileURLToPath(new URL('../../bench/peers/', import.meta.url));
const PY_SERVER = `${PEERS}remote_cmd_server.py`;
const PY_CLIENT = `${PEERS}remote_cmd_client.py`;

const CASE = 'exec `true` round trips, 1 connection';
const CLI_CASE = 'one whole CLI run, wall time';
const SOCKIT = 'sockit serve --exec (native spawner)';
const SOCKIT_NODE = 'sockit serve --exec --exec-spawner node (child_process)';
const BARE = "bare spawn('true') loop, default stdio";
const BARE_DETACHED = 'bare spawn loop, detached + piped (what sockit spawns)';
const BARE_NATIVE = "bare loop of sockit's native spawner (clone, CLONE_VM | CLONE_VFORK)";
const PYTHON_SERVER = 'python remote_cmd_server.py (seed)';
const PYTHON_SUBPROCESS = 'python subprocess loop (shell=True, as the seed)';
const C_FLOOR = 'C floor: posix_spawn + pipes, one loopback round trip per command, blocking I/O';
const NODE_FLOOR = "Node floor: sockit's native spawner behind a bare net server, one byte each way";

export const execSuite: BenchSuite = {
  name: 'exec',
  async run(context) {
    const servers: ExecServer[] = [];
    const loops: { stop(): void }[] = [];
    try {
      const native = await startExecServer('native');
      servers.push(native);
      const viaNode = await startExecServer('node');
      servers.push(viaNode);
      const bare = startSpawnLoop();
      loops.push(bare);
      await bare.run('default', WARMUP_COMMANDS);
      const python = findPython();
      const pythonLoop = python ? startBatchLoop(python.path, ['-c', PYTHON_LOOP]) : undefined;
      if (pythonLoop) {
        loops.push(pythonLoop);
        await pythonLoop.run(String(WARMUP_COMMANDS));
      }
      // What any exec service that crosses the network can reach here (bench/lib/exec-floor.c).
      const floorBinary = compileLoadProgram('exec-floor');
      const floorLoop = floorBinary ? startBatchLoop(floorBinary, []) : undefined;
      if (floorLoop) {
        loops.push(floorLoop);
        await floorLoop.run(String(WARMUP_COMMANDS));
      } else context.note('no C compiler: the C floor of a networked exec service is not measured.');
      // The same round trip with Node at both ends and no protocol (bench/lib/exec-node-floor.ts).
      const nodeFloor = startBatchLoop(process.execPath, [
        fileURLToPath(new URL('./lib/exec-node-floor.js', import.meta.url)),
      ]);
      loops.push(nodeFloor);
      await nodeFloor.run(String(WARMUP_COMMANDS));

      const rates = await interleaved([
        { name: BARE, batch: () => bare.run('default', BATCH) },
        { name: SOCKIT, batch: () => repeat(BATCH, native.runTrue) },
        { name: BARE_DETACHED, batch: () => bare.run('detached', BATCH) },
        { name: SOCKIT_NODE, batch: () => repeat(BATCH, viaNode.runTrue) },
        { name: BARE_NATIVE, batch: () => bare.run('native', BATCH) },
        ...(pythonLoop ? [{ name: PYTHON_SUBPROCESS, batch: () => pythonLoop.run(String(BATCH)) }] : []),
        ...(floorLoop ? [{ name: C_FLOOR, batch: () => floorLoop.run(String(BATCH)) }] : []),
        { name: NODE_FLOOR, batch: () => nodeFloor.run(String(BATCH)) },
      ]);
      const medians = Object.fromEntries(rates.map((entry) => [entry.name, entry.rate]));
      for (const entry of rates) {
        context.record({
          case: CASE,
          subject: entry.name,
          value: Math.round(entry.rate),
          unit: 'commands/s',
          extra: { commands: entry.count, 'mean µs': Math.round(1e6 / entry.rate) },
        });
      }
      context.ratio({
        case: CASE,
        label: `${SOCKIT} / ${BARE}`,
        value: medians[SOCKIT]! / medians[BARE]!,
        target: 0.8,
      });
      context.ratio({
        case: CASE,
        label: `${SOCKIT_NODE} / ${BARE_DETACHED} (the protocol's cost, same spawn)`,
        value: medians[SOCKIT_NODE]! / medians[BARE_DETACHED]!,
      });
      context.ratio({
        case: CASE,
        label: `${SOCKIT} / ${SOCKIT_NODE} (what the native spawner buys)`,
        value: medians[SOCKIT]! / medians[SOCKIT_NODE]!,
      });

      if (!python) {
        context.note(
          'python3 not found: the seed remote-command server is skipped (set PYTHON=/path/to/python3).',
        );
      } else {
        const pythonRate = await measurePythonServer(context, python.path);
        if (pythonRate !== undefined) {
          context.ratio({
            case: CASE,
            label: `${SOCKIT} / ${PYTHON_SERVER}`,
            value: medians[SOCKIT]! / pythonRate,
          });
        }
        const subprocessRate = medians[PYTHON_SUBPROCESS]!;
        context.ratio({
          case: CASE,
          label: `${SOCKIT} / ${PYTHON_SUBPROCESS} (the issue's target)`,
          value: medians[SOCKIT]! / subprocessRate,
          target: 1,
        });
        context.ratio({
          case: CASE,
          label: `${BARE} / ${PYTHON_SUBPROCESS} (Node's fork vs Python's fork_exec)`,
          value: medians[BARE]! / subprocessRate,
        });
        context.ratio({
          case: CASE,
          label: `${BARE_NATIVE} / ${PYTHON_SUBPROCESS} (vfork-style clone against Python's vfork)`,
          value: medians[BARE_NATIVE]! / subprocessRate,
        });
        if (floorLoop) {
          context.ratio({
            case: CASE,
            label: `${C_FLOOR} / ${PYTHON_SUBPROCESS} (a minimal networked service in C)`,
            value: medians[C_FLOOR]! / subprocessRate,
          });
        }
        context.ratio({
          case: CASE,
          label: `${NODE_FLOOR} / ${PYTHON_SUBPROCESS} (a minimal networked service in Node)`,
          value: medians[NODE_FLOOR]! / subprocessRate,
        });
      }
      context.ratio({
        case: CASE,
        label: `${SOCKIT} / ${NODE_FLOOR} (what the protocol and the service cost in Node)`,
        value: medians[SOCKIT]! / medians[NODE_FLOOR]!,
      });
      if (floorLoop) {
        context.ratio({
          case: CASE,
          label: `${SOCKIT} / ${C_FLOOR} (what Node and the protocol cost over the floor)`,
          value: medians[SOCKIT]! / medians[C_FLOOR]!,
        });
      }

      await measureCli(context, native.address, native.token);
    } finally {
      for (const loop of loops) loop.stop();
      for (const server of servers) await server.stop();
    }
  },
};

interface ExecServer {
  address: string;
  token: string;
  /** One `true` over the server's connection; throws unless it exits 0. */
  runTrue(): Promise<void>;
  stop(): Promise<void>;
}

/** `sockit serve --exec` with one spawner and a warmed-up client on it; `stop` closes both. */
async function startExecServer(spawner: 'native' | 'node'): Promise<ExecServer> {
  const server = await startSockitServe({ extraArgs: ['--exec', '--exec-spawner', spawner] });
  try {
    const address = `tcp://127.0.0.1:${server.port}`;
    const client = await connect(address, { token: server.token, env: {} });
    const runTrue = (): Promise<void> => client.exec(['true']).then(check);
    await repeat(WARMUP_COMMANDS, runTrue);
    return {
      address,
      token: server.token,
      runTrue,
      async stop() {
        await client.close().catch(() => {});
        await server.stop();
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

function check(result: { code: number | null }): void {
  if (result.code !== 0) throw new Error(`remote true exited ${result.code}`);
}

/**
 * Runs the subjects in alternating batches for the whole window and returns each one's rate
 * over its own batches: a machine that speeds up or slows down mid-run (other work, CPU
 * frequency) affects every subject alike.
 */
async function interleaved(
  subjects: { name: string; batch: () => Promise<void> }[],
): Promise<{ name: string; rate: number; count: number }[]> {
  const totals = subjects.map((subject) => ({ ...subject, ms: 0, count: 0 }));
  const deadline = performance.now() + WINDOW_MS;
  while (performance.now() < deadline) {
    for (const subject of totals) {
      const started = performance.now();
      await subject.batch();
      subject.ms += performance.now() - started;
      subject.count += BATCH;
    }
  }
  return totals.map((subject) => ({
    name: subject.name,
    rate: subject.count / (subject.ms / 1000),
    count: subject.count,
  }));
}

async function repeat(count: number, step: () => Promise<void>): Promise<void> {
  for (let i = 0; i < count; i++) await step();
}

/** The bare-spawn baseline in a fresh process (see bench/lib/spawn-loop.ts for why). */
function startSpawnLoop(): {
  run(mode: 'default' | 'detached' | 'native', count: number): Promise<void>;
  stop(): void;
} {
  const loop = startBatchLoop(process.execPath, [
    fileURLToPath(new URL('./lib/spawn-loop.js', import.meta.url)),
  ]);
  return { run: (mode, count) => loop.run(`${mode} ${count}`), stop: loop.stop };
}

/**
 * What the seed server does per command, without the network: Popen(shell=True) +
 * communicate(), N at a time on request, so that it runs in the same alternating batches as
 * sockit instead of at another moment of a machine whose load changes by the second.
 */
const PYTHON_LOOP = [
  'import subprocess, sys',
  'for line in sys.stdin:',
  '    for _ in range(int(line)): subprocess.Popen("true", shell=True, stdin=-1, stdout=-1, stderr=-1).communicate()',
  '    print("done", flush=True)',
].join('\n');

/** A child that runs a batch per stdin line and answers one stdout line when it is done. */
function startBatchLoop(command: string, args: string[]): { run(line: string): Promise<void>; stop(): void } {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: (() => void)[] = [];
  lines.on('line', () => waiting.shift()?.());
  return {
    run: (line) =>
      new Promise<void>((resolve, reject) => {
        if (child.exitCode !== null) reject(new Error(`${command} (batch loop) has exited`));
        waiting.push(resolve);
        child.stdin!.write(`${line}\n`);
      }),
    stop: () => child.kill(),
  };
}

/**
 * The seed server over one connection, timed by the seed client itself (connect excluded).
 * A short probe sizes the run, since its rate depends on the machine's TCP acknowledgement timing.
 */
async function measurePythonServer(context: BenchContext, python: string): Promise<number | undefined> {
  let server: Awaited<ReturnType<typeof startServerChild>> | undefined;
  try {
    server = await startServerChild({
      name: PYTHON_SERVER,
      command: python,
      args: [PY_SERVER, '127.0.0.1', '0'],
      readyPattern: /^ready (\d+)$/m,
    });
    const port = server.port;
    const timed = async (count: number): Promise<number> => {
      let seconds = Number.NaN;
      const result = await runChild(
        python,
        [PY_CLIENT, '127.0.0.1', String(port), String(count), 'true'],
        (line) => {
          seconds = Number(line);
        },
        60_000,
      );
      if (result.code !== 0 || !Number.isFinite(seconds))
        throw new Error(`the seed client failed: ${result.stderr}`);
      return count / seconds;
    };
    const probe = await timed(10);
    const count = Math.max(20, Math.min(20_000, Math.round(probe * SECONDS)));
    const value = await timed(count);
    context.record({
      case: CASE,
      subject: PYTHON_SERVER,
      value: Math.round(value),
      unit: 'commands/s',
      extra: { commands: count, 'mean µs': Math.round(1e6 / value) },
    });
    if (value < 100) {
      context.note(
        `${PYTHON_SERVER}: ${Math.round(1e6 / value)} µs per command. The seed sends its 4-byte length and the ` +
          'output in two send calls without TCP_NODELAY, so Nagle holds the second until the client ' +
          "acknowledges the first (delayed ACK, ~40 ms on Linux): that stall, not Python's spawn, is its limit.",
      );
    }
    return value;
  } catch (error) {
    context.note(`${PYTHON_SERVER}: ${(error as Error).message}`);
    return undefined;
  } finally {
    await server?.stop();
  }
}

/**
 * Whole-process wall time, interleaved with `node -e 0`, medians compared. When the environment
 * sets NODE_EXTRA_CA_CERTS, every Node process parses that bundle of certificates at start (tens
 * of ms, `node -e 0` included), which flatters the ratio: the same pair is then measured without
 * it too, as its own case.
 */
async function measureCli(context: BenchContext, address: string, token: string): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, SOCKIT_TOKEN: token };
  await measureCliIn(context, CLI_CASE, address, env, 1 / 1.5);
  if (env.NODE_EXTRA_CA_CERTS) {
    const { NODE_EXTRA_CA_CERTS: _ignored, ...withoutExtraCerts } = env;
    await measureCliIn(
      context,
      `${CLI_CASE}, NODE_EXTRA_CA_CERTS unset`,
      address,
      withoutExtraCerts,
      undefined,
    );
    context.note(
      'NODE_EXTRA_CA_CERTS is set here: each Node process parses those certificates at start, `node -e 0` ' +
        'too. The second CLI case leaves it out: the same command lines without that fixed cost in both.',
    );
  }
}

async function measureCliIn(
  context: BenchContext,
  caseName: string,
  address: string,
  env: NodeJS.ProcessEnv,
  target: number | undefined,
): Promise<void> {
  const subjects: Record<string, string[]> = {
    'node -e 0': ['-e', '0'],
    'sockit exec ADDR -- true': [SOCKIT_CLI, 'exec', address, '--', 'true'],
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(subjects).map((name) => [name, []]));
  for (let run = 0; run < CLI_RUNS + 2; run++) {
    for (const [name, args] of Object.entries(subjects)) {
      const ms = await wallTime(args, env);
      if (run >= 2) times[name]!.push(ms); // the first two runs warm the disk cache
    }
  }
  const medians: Record<string, number> = {};
  for (const [name, values] of Object.entries(times)) {
    medians[name] = median(values) ?? Number.NaN;
    context.record({
      case: caseName,
      subject: name,
      value: Math.round(medians[name]! * 10) / 10,
      unit: 'ms (median)',
      extra: { 'min ms': Math.round(Math.min(...values) * 10) / 10, runs: values.length },
    });
  }
  context.ratio({
    case: caseName,
    label: 'node -e 0 / sockit exec wall time (the issue: >= 0.67, the CLI takes <= 1.5x)',
    value: medians['node -e 0']! / medians['sockit exec ADDR -- true']!,
    ...(target !== undefined ? { target } : {}),
  });
}

function wallTime(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve(performance.now() - started);
    });
  });
}
