/**
 * `sockit serve --workers 2`: one port shared by two worker processes, a killed worker
 * restarted, 1,000 clients spread over both, metrics summed, SIGTERM drains both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Client, connect } from '../../src/index.js';
import { reusePortSupported } from '../../src/transport/listen.js';
import { sharedState, startNats } from '../bus/helpers.js';
import { runCli, TEST_TOKEN } from '../helpers.js';
import { promtool } from '../metrics/promtool.js';
import { closedPort, killAll, type Running, sockit, waitForCount, waitForText } from '../raw/helpers.js';

interface Started {
  running: Running;
  address: string;
  pids: number[];
  metricsUrl: string;
}

async function startWorkers(stateDir: string): Promise<Started> {
  const running = sockit(
    [
      'serve',
      '127.0.0.1:0',
      '--workers',
      '2',
      '--metrics',
      '127.0.0.1:0',
      '--state-dir',
      stateDir,
      '--json-logs',
    ],
    { stdin: 'ignore' },
  );
  const banner = await waitForText(
    running,
    /on:\n\s+(\S+)[\s\S]*workers: 2 \(pids (\d+), (\d+);[\s\S]*metrics: (\S+)/,
    'stdout',
  );
  return {
    running,
    address: banner[1]!,
    pids: [Number(banner[2]), Number(banner[3])],
    metricsUrl: banner[4]!,
  };
}

/** One sample's value from a Prometheus text scrape, 0 when absent. */
function sample(scrape: string, series: string): number {
  const line = scrape.split('\n').find((text) => text.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('sockit serve --workers', { timeout: 120_000 }, () => {
  let state: Awaited<ReturnType<typeof sharedState>>;
  const clients: Client[] = [];
  const open = async (address: string): Promise<Client> => {
    const client = await connect(address, { token: TEST_TOKEN, stateDir: state.path });
    clients.push(client);
    return client;
  };
  before(async () => {
    state = await sharedState();
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await killAll();
    await state?.cleanup();
  });

  it('refuses --workers 2 --chat without a bus, and a bad count', async () => {
    const chat = await runCli(['serve', '--chat', '--workers', '2', '--state-dir', state.path]);
    assert.equal(chat.code, 2);
    assert.match(chat.stderr, /USAGE: --workers 2 with --chat needs --bus: each worker is its own process/);
    const bad = await runCli(['serve', '--workers', 'many', '--state-dir', state.path]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /USAGE: --workers takes a number from 1 to 256 or auto, got "many"/);
  });

  it('/readyz asks every worker: 503 while one does not answer or their bus is down, 200 when all are ready', async () => {
    const nats = await startNats();
    try {
      const running = sockit(
        [
          ...['serve', '127.0.0.1:0', '--workers', '2', '--chat', '--bus', nats.url],
          ...['--metrics', '127.0.0.1:0', '--state-dir', state.path, '--json-logs'],
        ],
        { stdin: 'ignore' },
      );
      const banner = await waitForText(
        running,
        /workers: 2 \(pids (\d+), (\d+);[\s\S]*metrics: (\S+)\/metrics/,
        'stdout',
      );
      const readyz = `${banner[3]}/readyz`;
      const stopped = Number(banner[1]);
      const get = async (): Promise<[number, string]> => {
        const response = await fetch(readyz);
        return [response.status, await response.text()];
      };
      assert.deepEqual(await get(), [200, 'ready\n']);
      process.kill(stopped, 'SIGSTOP');
      try {
        assert.deepEqual(await get(), [503, `not ready: worker ${stopped}: no answer\n`]);
      } finally {
        process.kill(stopped, 'SIGCONT');
      }
      assert.deepEqual(await get(), [200, 'ready\n']);
      await nats.kill();
      await waitForCount(running, /"msg":"bus down/, 2);
      const [status, text] = await get();
      assert.equal(status, 503);
      assert.match(text, /^not ready: worker \d+: bus down\n$/);
      await nats.restart();
      await waitForCount(running, /"msg":"bus up again"/, 2);
      assert.deepEqual(await get(), [200, 'ready\n']);
      assert.equal((await running.stop()).code, 0);
    } finally {
      await nats.stop();
    }
  });

  it('--balance reuseport: each worker binds the port where Node has it, else refused with the reason', async () => {
    const bad = await runCli(['serve', '--workers', '2', '--balance', 'random', '--state-dir', state.path]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /USAGE: --balance takes cluster or reuseport, got "random"/);
    const zero = await runCli([
      'serve',
      '127.0.0.1:0',
      '--workers',
      '2',
      '--balance',
      'reuseport',
      '--state-dir',
      state.path,
    ]);
    assert.equal(zero.code, 2);
    if (!reusePortSupported()) {
      assert.match(
        zero.stderr,
        /USAGE: --balance reuseport needs Node >= 22\.12 on Linux \(this is Node \d+/,
      );
      return;
    }
    assert.match(zero.stderr, /tcp:\/\/127\.0\.0\.1:0 cannot be shared so/);
    const port = await closedPort();
    const running = sockit(
      ['serve', `127.0.0.1:${port}`, '--workers', '2', '--balance', 'reuseport', '--state-dir', state.path],
      { stdin: 'ignore' },
    );
    await waitForText(running, /workers: 2/, 'stdout');
    for (let i = 0; i < 4; i++)
      assert.equal((await (await open(`127.0.0.1:${port}`)).echo('r')).toString(), 'r');
    for (const client of clients.splice(0)) client.destroy();
    assert.equal((await running.stop()).code, 0);
  });

  it('a killed worker is restarted and logged; the port keeps serving', async () => {
    const started = await startWorkers(state.path);
    await waitForCount(started.running, /"msg":"listening"/, 2); // both workers serve
    const victim = started.pids[0]!;
    process.kill(victim, 'SIGKILL');
    await waitForText(started.running, new RegExp(`"msg":"worker exited; starting another","pid":${victim}`));
    await waitForCount(started.running, /"msg":"worker started"/, 3);
    await waitForCount(started.running, /"msg":"listening"/, 3);
    for (let i = 0; i < 4; i++)
      assert.equal((await (await open(started.address)).echo('after')).toString(), 'after');
    const scrape = await (await fetch(started.metricsUrl)).text();
    assert.equal(sample(scrape, 'sockit_worker_restarts_total'), 1);
    assert.equal(sample(scrape, 'sockit_workers_running'), 2);
    const checked = promtool(scrape);
    assert.equal(checked.code, 0, checked.output);
    for (const client of clients.splice(0)) client.destroy();
    assert.equal((await started.running.stop()).code, 0);
  });

  it('1,000 clients spread over both workers, counted in the summed metrics; SIGTERM drains both', async () => {
    const started = await startWorkers(state.path);
    const total = 1000;
    for (let batch = 0; batch < total; batch += 100) {
      await Promise.all(
        Array.from({ length: 100 }, async () => {
          const client = await open(started.address);
          assert.equal((await client.echo('x')).toString(), 'x');
        }),
      );
    }
    const scrape = await (await fetch(started.metricsUrl)).text();
    assert.equal(sample(scrape, 'sockit_connections_total'), total);
    assert.equal(sample(scrape, 'sockit_connections_open'), total);
    assert.equal(sample(scrape, 'sockit_requests_total{type="echo",code="OK"}'), total);

    const closed = Promise.all(
      clients.map((client) => new Promise((resolve) => client.once('close', resolve))),
    );
    started.running.child.kill('SIGTERM');
    assert.equal((await started.running.exited).code, 0, started.running.stderr());
    await closed;
    // Each worker logged how many it was draining: both had some, together all of them.
    const counts = [
      ...started.running.stderr().matchAll(/"msg":"shutting down","signal":"SIGTERM","connections":(\d+)/g),
    ].map((match) => Number(match[1]));
    assert.equal(counts.length, 2, started.running.stderr());
    assert.ok(
      counts.every((count) => count > 0),
      `connections per worker: ${counts.join(', ')}`,
    );
    assert.equal(counts[0]! + counts[1]!, total);
    assert.equal(
      started.running.stderr().match(/"msg":"stopped"/g)?.length,
      3,
      'two workers and the primary',
    );
    clients.splice(0);
  });
});

describe('reusePortSupported', () => {
  it('is the Node versions that have reusePort, on Linux', () => {
    assert.equal(reusePortSupported('22.12.0', 'linux'), true);
    assert.equal(reusePortSupported('22.11.0', 'linux'), false);
    assert.equal(reusePortSupported('23.0.0', 'linux'), false);
    assert.equal(reusePortSupported('23.1.0', 'linux'), true);
    assert.equal(reusePortSupported('24.0.0', 'linux'), true);
    assert.equal(reusePortSupported('20.20.2', 'linux'), false);
    assert.equal(reusePortSupported('24.0.0', 'darwin'), false);
  });
});
