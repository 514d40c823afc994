/** Helpers for bus tests: a real nats-server on a port of its choosing, sockit servers on it. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_TOKEN, tempDir } from '../helpers.js';
import { launch, type Running, sockit, waitForText } from '../raw/helpers.js';
import { missingTool } from '../tools.js';

/** A nats-server with JetStream in a temp store; `restart` brings it back on the same port. */
export interface Nats {
  url: string;
  port: number;
  running: Running;
  /** Stops it (SIGKILL: an outage, not a goodbye). */
  kill(): Promise<void>;
  /** Starts it again on the same port and store. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts nats-server on 127.0.0.1, port chosen by the server (`-p -1`); fails if it is not installed. */
export async function startNats(): Promise<Nats> {
  const why = missingTool('nats-server');
  if (why) throw new Error(why);
  const store = await tempDir('sockit-nats-');
  const start = async (port: number): Promise<{ running: Running; port: number }> => {
    const running = launch('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store.path]);
    const match = await waitForText(running, /Listening for client connections on 127\.0\.0\.1:(\d+)/);
    await waitForText(running, /Server is ready/);
    return { running, port: Number(match[1]) };
  };
  let current = await start(-1);
  const nats: Nats = {
    url: `nats://127.0.0.1:${current.port}`,
    port: current.port,
    running: current.running,
    async kill() {
      current.running.child.kill('SIGKILL');
      await current.running.exited;
    },
    async restart() {
      current = await start(nats.port);
      nats.running = current.running;
    },
    async stop() {
      await current.running.stop();
      await store.cleanup();
    },
  };
  return nats;
}

/** A `sockit serve --chat --bus` child and the address it listens on. */
export interface BusServer extends Running {
  address: string;
}

/** A state dir shared by the servers of a test: one token (TEST_TOKEN) and certificate for all. */
export async function sharedState(): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const state = await tempDir('sockit-bus-state-');
  writeFileSync(join(state.path, 'token'), `${TEST_TOKEN}\n`, { mode: 0o600 });
  return state;
}

/** Starts `sockit serve 127.0.0.1:0 --chat --bus URL` with a short heartbeat. */
export async function startBusServer(
  busUrl: string,
  stateDir: string,
  extra: string[] = [],
): Promise<BusServer> {
  const running = sockit(
    ['serve', '127.0.0.1:0', '--chat', '--bus', busUrl, '--state-dir', stateDir, ...extra],
    { stdin: 'ignore' },
  );
  const match = await waitForText(running, /serving .* on:\n\s+(\S+)/, 'stdout');
  return { ...running, address: match[1]! };
}
