/**
 * `sockit serve --metrics`: the scrape passes `promtool check metrics`, and its counters match
 * the traffic this test sends; `/readyz` answers 503 while the bus is down or the server drains.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { memoryBus } from '../../src/bus/memory.js';
import { syncFromRemote, syncToRemote } from '../../src/client/sync.js';
import { type Client, connect } from '../../src/index.js';
import { serveMetrics } from '../../src/metrics/http.js';
import { createServerMetrics } from '../../src/metrics/metrics.js';
import { type Nats, sharedState, startNats } from '../bus/helpers.js';
import { TEST_TOKEN, tempDir, untilChat } from '../helpers.js';
import { killAll, sockit, waitForText } from '../raw/helpers.js';
import { missingTool } from '../tools.js';
import { promtool } from './promtool.js';

/** One sample's value from a Prometheus text scrape, 0 when the series is absent. */
function sample(scrape: string, series: string): number {
  for (const line of scrape.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const response = await fetch(url);
  return { status: response.status, text: await response.text() };
}

/** The server counts a connection's bytes when it closes: scrape again until the closes are in. */
async function scrapeUntil(url: string, done: (scrape: string) => boolean): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { text } = await get(url);
    if (done(text)) return text;
    assert.ok(Date.now() < deadline, `the scrape never satisfied the condition:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('sockit serve --metrics', { timeout: 60_000 }, () => {
  let nats: Nats;
  let state: Awaited<ReturnType<typeof sharedState>>;
  const clients: Client[] = [];
  before(async () => {
    const why = missingTool('promtool');
    assert.equal(why, undefined, why);
    nats = await startNats();
    state = await sharedState();
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await killAll();
    await nats?.stop();
    await state?.cleanup();
  });

  it('counts connections, refusals, requests by type and code, bytes, chat; promtool accepts the scrape', async () => {
    const server = sockit(
      [
        ...['serve', '127.0.0.1:0', '--chat', '--bus', nats.url, '--state-dir', state.path],
        ...['--metrics', '127.0.0.1:0', '--max-connections', '4'],
      ],
      { stdin: 'ignore' },
    );
    const banner = await waitForText(server, /serving .* on:\n\s+(\S+)\nmetrics: (\S+)/, 'stdout');
    const address = banner[1]!;
    const metricsUrl = banner[2]!;
    const base = metricsUrl.replace(/\/metrics$/, '');
    assert.equal((await get(`${base}/healthz`)).status, 200);
    assert.deepEqual(await get(`${base}/readyz`), { status: 200, text: 'ready\n' });

    const open = async (token = TEST_TOKEN): Promise<Client> => {
      const client = await connect(address, { token, stateDir: state.path });
      clients.push(client);
      return client;
    };
    const worker = await open();
    const body = Buffer.alloc(1000, 0x61);
    for (let i = 0; i < 5; i++) assert.equal((await worker.echo(body)).length, 1000);
    await assert.rejects(open('wrong-token'), { code: 'AUTH_FAILED' });
    const alice = await (await open()).chat({ name: 'alice', room: 'm' });
    await (await open()).chat({ name: 'bob', room: 'm' });
    await assert.rejects((await open()).chat({ name: 'alice', room: 'm' }), { code: 'CONFLICT' });
    for (let i = 0; i < 3; i++) alice.say(`hi ${i}`);
    // Four connections are open: a fifth is refused at the limit.
    const refused = net.connect({
      port: Number(address.slice(address.lastIndexOf(':') + 1)),
      host: '127.0.0.1',
    });
    const busy = await new Promise<string>((resolve) =>
      refused.once('data', (chunk: Buffer) => resolve(String(chunk))),
    );
    assert.match(busy, /BUSY/);
    refused.destroy();

    let scrape = await scrapeUntil(
      metricsUrl,
      (text) => sample(text, 'sockit_messages_total{type="say"}') === 3,
    );
    assert.equal(sample(scrape, 'sockit_connections_total'), 5, 'four clients + the wrong token');
    assert.equal(sample(scrape, 'sockit_connections_open'), 4);
    assert.equal(sample(scrape, 'sockit_connections_refused_total{reason="limit"}'), 1);
    assert.equal(sample(scrape, 'sockit_connection_errors_total{code="AUTH_FAILED"}'), 1);
    assert.equal(sample(scrape, 'sockit_requests_total{type="echo",code="OK"}'), 5);
    assert.equal(sample(scrape, 'sockit_requests_total{type="join",code="OK"}'), 2);
    assert.equal(sample(scrape, 'sockit_requests_total{type="join",code="CONFLICT"}'), 1);
    assert.equal(sample(scrape, 'sockit_chat_members'), 2);
    assert.equal(sample(scrape, 'sockit_bus_up{kind="nats"}'), 1);
    const checked = promtool(scrape);
    assert.equal(checked.code, 0, checked.output);

    for (const client of clients.splice(0)) client.destroy();
    scrape = await scrapeUntil(metricsUrl, (text) => sample(text, 'sockit_connections_open') === 0);
    assert.ok(sample(scrape, 'sockit_bytes_received_total') >= 5 * 1000, 'the echo bodies came in');
    assert.ok(sample(scrape, 'sockit_bytes_sent_total') >= 5 * 1000, 'and went out');
    assert.equal(sample(scrape, 'sockit_chat_members'), 0);

    await nats.kill();
    await waitForText(server, /bus down/);
    assert.deepEqual(await get(`${base}/readyz`), { status: 503, text: 'not ready: bus down\n' });
    scrape = (await get(metricsUrl)).text;
    assert.equal(sample(scrape, 'sockit_bus_up{kind="nats"}'), 0);
    assert.equal(sample(scrape, 'sockit_bus_state_changes_total{state="down"}'), 1);
    await nats.restart();
    await waitForText(server, /bus up again/);
    assert.equal((await get(`${base}/readyz`)).status, 200);
    assert.equal(sample((await get(metricsUrl)).text, 'sockit_bus_state_changes_total{state="up"}'), 1);
    assert.equal((await server.stop()).code, 0);
  });

  it('counts exec exits by code and signal, commands running, file bytes and integrity failures', async () => {
    const root = await tempDir('sockit-metrics-files-');
    const local = await tempDir('sockit-metrics-local-');
    try {
      const server = sockit(
        [
          ...['serve', '127.0.0.1:0', '--exec', '--files', root.path, '--state-dir', state.path],
          ...['--metrics', '127.0.0.1:0'],
        ],
        { stdin: 'ignore' },
      );
      const banner = await waitForText(server, /serving .* on:\n\s+(\S+)\nmetrics: (\S+)/, 'stdout');
      const metricsUrl = banner[2]!;
      const client = await connect(banner[1]!, { token: TEST_TOKEN, stateDir: state.path });
      clients.push(client);
      assert.equal((await client.exec(['true'])).code, 0);
      for (let i = 0; i < 2; i++) assert.equal((await client.exec(['sh', '-c', 'exit 3'])).code, 3);
      assert.equal((await client.exec(['sh', '-c', 'kill -9 $$'])).signal, 'SIGKILL');
      const running = client.spawn(['cat']);
      await running.started;
      assert.equal(sample((await get(metricsUrl)).text, 'sockit_requests_open{type="exec"}'), 1);
      running.stdin!.end();
      assert.equal((await running.exited).code, 0);

      const data = randomBytes(10_000);
      writeFileSync(join(local.path, 'up.bin'), data);
      await client.put(join(local.path, 'up.bin'), 'up.bin');
      await client.get('up.bin', join(local.path, 'down.bin'));
      // Small files travel in put-batch / get-batch requests: counted as file bytes all the same.
      mkdirSync(join(local.path, 'tree'));
      for (const name of ['a', 'b']) writeFileSync(join(local.path, 'tree', name), Buffer.alloc(500, 7));
      assert.equal((await syncToRemote(client, join(local.path, 'tree'), 'tree')).sent, 2);
      assert.equal((await syncFromRemote(client, 'tree', join(local.path, 'copy'))).sent, 2);
      // A put whose bytes do not match its digest: INTEGRITY.
      const put = client.open({ type: 'put', path: 'bad.bin', fileSize: 1000 }, undefined, {
        final: (frame) => frame.type === 'put-done',
      });
      await new Promise<void>((resolve) => {
        put.onFrame = () => resolve();
      });
      put.send({ type: 'data' }, Buffer.alloc(1000, 1));
      put.send({ type: 'put-end', sha256: createHash('sha256').update(Buffer.alloc(1000, 2)).digest('hex') });
      await assert.rejects(put.done, { code: 'INTEGRITY' });

      const scrape = (await get(metricsUrl)).text;
      assert.equal(sample(scrape, 'sockit_exec_exits_total{code="0",signal=""}'), 2, 'true and cat');
      assert.equal(sample(scrape, 'sockit_exec_exits_total{code="3",signal=""}'), 2);
      assert.equal(sample(scrape, 'sockit_exec_exits_total{code="",signal="SIGKILL"}'), 1);
      assert.equal(sample(scrape, 'sockit_requests_open{type="exec"}'), 0);
      assert.equal(sample(scrape, 'sockit_file_bytes_received_total'), 10_000 + 1000 + 1000);
      assert.equal(sample(scrape, 'sockit_file_bytes_sent_total'), 10_000 + 1000);
      assert.equal(sample(scrape, 'sockit_file_integrity_failures_total{type="put"}'), 1);
      assert.equal(sample(scrape, 'sockit_requests_total{type="put",code="INTEGRITY"}'), 1);
      const checked = promtool(scrape);
      assert.equal(checked.code, 0, checked.output);
      assert.equal((await server.stop()).code, 0);
    } finally {
      await root.cleanup();
      await local.cleanup();
    }
  });

  it('chat across two servers: messages delivered, received from the bus, and its lag', async () => {
    const start = async (): Promise<{ address: string; metricsUrl: string }> => {
      const server = sockit(
        [
          ...['serve', '127.0.0.1:0', '--chat', '--bus', nats.url, '--state-dir', state.path],
          ...['--metrics', '127.0.0.1:0'],
        ],
        { stdin: 'ignore' },
      );
      const banner = await waitForText(server, /serving .* on:\n\s+(\S+)\nmetrics: (\S+)/, 'stdout');
      return { address: banner[1]!, metricsUrl: banner[2]! };
    };
    const one = await start();
    const two = await start();
    const join = async (address: string, name: string) => {
      const client = await connect(address, { token: TEST_TOKEN, stateDir: state.path });
      clients.push(client);
      return client.chat({ name, room: 'lag' });
    };
    const alice = await join(one.address, 'alice');
    const bob = await join(two.address, 'bob');
    const carol = await join(two.address, 'carol');
    // Presence is how alice's server learns that room "lag" has members on the other one.
    await untilChat(alice, () => alice.members.has('carol'));
    const got = (room: typeof bob, count: number): Promise<void> => {
      let seen = 0;
      return new Promise((resolve) => {
        room.on('message', () => {
          if (++seen === count) resolve();
        });
      });
    };
    const arrived = Promise.all([got(bob, 5), got(carol, 5), got(alice, 5)]);
    for (let i = 0; i < 5; i++) alice.say(`m${i}`);
    await arrived;
    const first = (await get(one.metricsUrl)).text;
    const second = (await get(two.metricsUrl)).text;
    assert.equal(sample(first, 'sockit_messages_total{type="say"}'), 5);
    assert.equal(sample(first, 'sockit_chat_messages_delivered_total'), 5, "alice's own copies");
    assert.equal(sample(second, 'sockit_chat_messages_delivered_total'), 10, 'bob and carol');
    assert.equal(sample(second, 'sockit_bus_messages_received_total'), 5);
    assert.equal(sample(second, 'sockit_bus_lag_seconds_count'), 5);
    assert.ok(sample(second, 'sockit_bus_lag_seconds_bucket{le="+Inf"}') === 5);
    assert.equal(sample(first, 'sockit_bus_messages_received_total'), 0);
    const checked = promtool(second);
    assert.equal(checked.code, 0, checked.output);
  });

  it('/readyz is 503 while draining; unknown paths are 404, other methods 405', async () => {
    let draining = false;
    const endpoint = await serveMetrics(
      '127.0.0.1',
      0,
      createServerMetrics({ bus: memoryBus(), draining: () => draining }),
    );
    try {
      assert.equal((await get(`${endpoint.url}/readyz`)).status, 200);
      draining = true;
      assert.deepEqual(await get(`${endpoint.url}/readyz`), { status: 503, text: 'not ready: draining\n' });
      assert.equal((await get(`${endpoint.url}/healthz`)).status, 200, 'alive while draining');
      assert.equal((await get(`${endpoint.url}/nope`)).status, 404);
      assert.equal((await fetch(`${endpoint.url}/metrics`, { method: 'POST' })).status, 405);
    } finally {
      await endpoint.close();
    }
  });

  it('refuses a bad --metrics address with USAGE', async () => {
    const result = sockit(['serve', '127.0.0.1:0', '--metrics', 'nowhere', '--state-dir', state.path], {
      stdin: 'ignore',
    });
    assert.equal((await result.exited).code, 2);
    assert.match(result.stderr(), /USAGE: --metrics takes HOST:PORT or PORT, got "nowhere"/);
  });
});
