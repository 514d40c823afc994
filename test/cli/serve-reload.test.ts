/**
 * SIGHUP reloads certificate and token without dropping anything: a client connected before
 * keeps working; new clients see the new certificate (pinning shows it) and need the new token;
 * a reload that fails keeps the old pair and logs one line; with --workers every worker reloads.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Client, connect } from '../../src/index.js';
import { generateSelfSignedCertificate } from '../../src/transport/self-signed.js';
import { sharedState } from '../bus/helpers.js';
import { TEST_TOKEN } from '../helpers.js';
import { killAll, type Running, sockit, waitForCount, waitForText } from '../raw/helpers.js';

const NEW_TOKEN = 'the-token-after-the-reload';

describe('sockit serve: SIGHUP reloads certificate and token', { timeout: 90_000 }, () => {
  let state: Awaited<ReturnType<typeof sharedState>>;
  const clients: Client[] = [];
  const first = generateSelfSignedCertificate();
  const second = generateSelfSignedCertificate();
  const certFile = (): string => join(state.path, 'cert.pem');
  const keyFile = (): string => join(state.path, 'key.pem');
  const install = (pair: { certPem: string; keyPem: string }, token: string): void => {
    writeFileSync(certFile(), pair.certPem);
    writeFileSync(keyFile(), pair.keyPem, { mode: 0o600 });
    writeFileSync(join(state.path, 'token'), `${token}\n`, { mode: 0o600 });
  };
  const open = async (address: string, fingerprint: string, token: string): Promise<Client> => {
    const client = await connect(address, { token, stateDir: state.path, tls: { fingerprint } });
    clients.push(client);
    return client;
  };
  const start = async (extra: string[]): Promise<{ running: Running; address: string }> => {
    install(first, TEST_TOKEN);
    const running = sockit(
      [
        'serve',
        'tls://127.0.0.1:0',
        '--cert',
        certFile(),
        '--key',
        keyFile(),
        '--state-dir',
        state.path,
        '--json-logs',
        ...extra,
      ],
      { stdin: 'ignore' },
    );
    const [, address] = await waitForText(running, /on:\n\s+(\S+)/, 'stdout');
    return { running, address: address! };
  };

  before(async () => {
    state = await sharedState();
  });
  after(async () => {
    for (const client of clients) client.destroy();
    await killAll();
    await state?.cleanup();
  });

  it('keeps the connected, gives new clients the new pair, and survives a bad reload', async () => {
    const { running, address } = await start([]);
    const before = await open(address, first.fingerprint256, TEST_TOKEN);
    assert.equal((await before.echo('before')).toString(), 'before');

    install(second, NEW_TOKEN);
    running.child.kill('SIGHUP');
    await waitForText(running, /"reloaded certificate and token \(SIGHUP\)".*"fingerprint":"([^"]+)"/);
    assert.match(running.stderr(), new RegExp(second.fingerprint256));
    assert.equal((await before.echo('still here')).toString(), 'still here', 'the old connection works on');

    await assert.rejects(open(address, first.fingerprint256, TEST_TOKEN), {
      code: 'TLS_FINGERPRINT_CHANGED',
    });
    await assert.rejects(open(address, second.fingerprint256, TEST_TOKEN), { code: 'AUTH_FAILED' });
    const after = await open(address, second.fingerprint256, NEW_TOKEN);
    assert.equal((await after.echo('after')).toString(), 'after');

    writeFileSync(certFile(), 'not a certificate\n');
    running.child.kill('SIGHUP');
    await waitForText(
      running,
      /"reload failed; keeping the old certificate and token".*cert\.pem is not a PEM certificate/,
    );
    assert.equal(running.stderr().match(/reload failed/g)?.length, 1, 'one line for one failed reload');
    const afterBad = await open(address, second.fingerprint256, NEW_TOKEN);
    assert.equal((await afterBad.echo('kept')).toString(), 'kept');
    assert.equal((await before.echo('and still')).toString(), 'and still');
    assert.equal(running.child.exitCode, null);
    assert.equal((await running.stop()).code, 0);
  });

  it('--workers 2: the primary passes SIGHUP to every worker', async () => {
    const { running, address } = await start(['--workers', '2']);
    const before = await open(address, first.fingerprint256, TEST_TOKEN);
    install(second, NEW_TOKEN);
    running.child.kill('SIGHUP');
    await waitForCount(running, /reloaded certificate and token/, 2);
    // Connections alternate between the workers: each of four new clients sees the new pair.
    for (let i = 0; i < 4; i++) {
      const client = await open(address, second.fingerprint256, NEW_TOKEN);
      assert.equal((await client.echo(`w${i}`)).toString(), `w${i}`);
    }
    assert.equal((await before.echo('kept')).toString(), 'kept');
    assert.equal((await running.stop()).code, 0);
  });
});
