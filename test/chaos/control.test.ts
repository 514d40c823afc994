import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeTestBed,
  echoThrough,
  type ForwardTestBed,
  forwardTestBed,
  startForwarder,
} from '../forward/helpers.js';
import { runCli } from '../helpers.js';
import { closedPort, launch } from '../raw/helpers.js';
import { requireTool } from '../tools.js';
import { controlUrl, httpCall } from './helpers.js';

describe('sockit chaos --control', { timeout: 120_000 }, () => {
  let bed: ForwardTestBed;
  before(async () => {
    bed = await forwardTestBed('sockit-chaos-control-');
  });
  after(() => closeTestBed(bed));

  it('the control API lists, adds and removes toxics, driven by curl', async (t) => {
    const curl = requireTool(t, 'curl');
    if (!curl) return;
    const control = await closedPort();
    const chaos = await startForwarder(
      'chaos',
      [
        '127.0.0.1:0',
        `127.0.0.1:${bed.echo.port}`,
        '-t',
        'latency:down:10ms',
        '--control',
        `127.0.0.1:${control}`,
      ],
      bed.env,
    );
    const api = `http://127.0.0.1:${control}/toxics`;
    const call = async (...args: string[]): Promise<{ status: number; body: string }> => {
      const run = launch(curl, ['-s', '-w', '\n%{http_code}', ...args]);
      await run.exited;
      const text = run.stdout().toString();
      const cut = text.lastIndexOf('\n');
      return { status: Number(text.slice(cut + 1)), body: text.slice(0, cut) };
    };
    try {
      const listed = await call(api);
      assert.equal(listed.status, 200);
      assert.deepEqual(JSON.parse(listed.body), [
        {
          name: 'latency_down',
          type: 'latency',
          stream: 'down',
          toxicity: 1,
          attributes: { latency: 10, jitter: 0 },
        },
      ]);
      const added = await call('-d', '{"type":"limit-data","stream":"down","attributes":{"bytes":3}}', api);
      assert.equal(added.status, 201, added.body);
      assert.equal((JSON.parse(added.body) as { name: string }).name, 'limit-data_down');
      assert.equal((await echoThrough(chaos.port, Buffer.from('abcdef'))).toString(), 'abc');
      assert.equal((await call('-d', '{"spec":"slicer:both:2"}', api)).status, 201);
      assert.equal((await call('-d', '{"spec":"slicer:both:2"}', api)).status, 409);
      const bad = await call('-d', 'not json', api);
      assert.equal(bad.status, 400);
      assert.equal((JSON.parse(bad.body) as { error: { code: string } }).error.code, 'USAGE');
      assert.equal((await call('-X', 'DELETE', `${api}/limit-data_down`)).status, 204);
      assert.equal((await call('-X', 'DELETE', `${api}/limit-data_down`)).status, 404);
      assert.equal((await echoThrough(chaos.port, Buffer.from('abcdef'))).toString(), 'abcdef');
      assert.equal((await call('-X', 'DELETE', api)).status, 204);
      assert.deepEqual(JSON.parse((await call(api)).body), []);
    } finally {
      await chaos.stop();
    }
  });

  it('refuses a control address off loopback', async () => {
    const result = await runCli(['chaos', '127.0.0.1:0', '127.0.0.1:1', '--control', '0.0.0.0:0'], {
      env: bed.env,
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /the control API listens on loopback TCP only/);
  });

  it('answers a name that is not valid percent-encoding with 400, not 500', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['127.0.0.1:0', `127.0.0.1:${bed.echo.port}`, '-t', 'latency:down:10ms', '--control', '127.0.0.1:0'],
      bed.env,
    );
    try {
      const api = controlUrl(chaos);
      for (const method of ['DELETE', 'GET']) {
        const answer = await httpCall(method, `${api}/%E0`);
        assert.equal(answer.status, 400, `${method}: ${answer.body}`);
        assert.equal(answer.body.endsWith('\n'), true);
        const { error } = JSON.parse(answer.body) as { error: { code: string; message: string } };
        assert.equal(error.code, 'USAGE');
        assert.match(error.message, /"%E0" is not a percent-encoded toxic name/);
      }
      // A body over the limit is answered 413, not cut off unanswered.
      const large = await httpCall('POST', api, `{"spec":"${'x'.repeat(200 * 1024)}"}`);
      assert.equal(large.status, 413, large.body);
      assert.match(large.body, /"TOO_LARGE"/);
      // A well-formed escape still names a toxic.
      assert.equal((await httpCall('GET', `${api}/latency%5Fdown`)).status, 200);
      assert.equal((await httpCall('DELETE', `${api}/latency%5Fdown`)).status, 204);
      await chaos.stop();
      assert.doesNotMatch(chaos.stderr(), /control API: |Error/);
    } finally {
      await chaos.stop();
    }
  });

  it('refuses a time longer than a Node timer holds with 400, in either form', async () => {
    const chaos = await startForwarder(
      'chaos',
      ['udp://127.0.0.1:0', 'udp://127.0.0.1:9', '--control', '127.0.0.1:0'],
      bed.env,
    );
    try {
      const api = controlUrl(chaos);
      const spec = await httpCall('POST', api, '{"spec":"latency:down:99999999999s"}');
      assert.equal(spec.status, 400, spec.body);
      const specError = (JSON.parse(spec.body) as { error: { code: string; message: string } }).error;
      assert.equal(specError.code, 'USAGE');
      assert.match(specError.message, /"99999999999s" is over the longest wait, 2147483647 ms/);
      const json = await httpCall('POST', api, '{"type":"latency","attributes":{"latency":2147483648}}');
      assert.equal(json.status, 400, json.body);
      assert.match(json.body, /latency is over the longest wait, 2147483647 ms/);
      assert.equal((await httpCall('GET', api)).body, '[]\n');
      const longest = await httpCall('POST', api, '{"type":"latency","attributes":{"latency":2147483647}}');
      assert.equal(longest.status, 201, longest.body);
    } finally {
      await chaos.stop();
    }
  });
});
