import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { parsePortSpec, parseScanTarget } from '../../src/raw/scan.js';
import { closedPort, killAll, sockit } from './helpers.js';

describe('connect -z (port check)', () => {
  after(killAll);

  it('parses ports, ranges and lists', () => {
    assert.deepEqual(parsePortSpec('80'), [80]);
    assert.deepEqual(parsePortSpec('22,20-23,80'), [20, 21, 22, 23, 80]);
    assert.deepEqual(parseScanTarget('[::1]:22,80'), { host: '::1', ports: [22, 80] });
    assert.deepEqual(parseScanTarget('tcp://localhost:7'), { host: 'localhost', ports: [7] });
    for (const bad of ['0', '70000', '9-3', 'http', '']) assert.throws(() => parsePortSpec(bad), /USAGE|-z/);
  });

  it('prints open ports, exits 0 when any is open and 1 when none is', async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const open = (server.address() as net.AddressInfo).port;
    const closed = await closedPort();
    try {
      const scan = sockit(['connect', '-z', `127.0.0.1:${closed},${open}`, '-v'], { stdin: 'ignore' });
      assert.equal((await scan.exited).code, 0, scan.stderr());
      assert.equal(scan.stdout().toString(), `127.0.0.1:${open} open\n`);
      assert.match(scan.stderr(), new RegExp(`127\\.0\\.0\\.1:${closed} closed \\(refused\\)`));

      const none = sockit(['connect', '-z', `127.0.0.1:${closed}`, '--json'], { stdin: 'ignore' });
      assert.equal((await none.exited).code, 1);
      assert.deepEqual(JSON.parse(none.stdout().toString()), {
        host: '127.0.0.1',
        results: [{ port: closed, open: false, reason: 'refused' }],
      });
    } finally {
      server.close();
    }
  });
});
