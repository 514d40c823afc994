/**
 * The installed `sockit` (bin/sockit.cjs) runs each command from its single-file bundle
 * (build/cli/<name>.cjs, scripts/bundle-cli.mjs): every command must have one, and each must be
 * the same program as build/src/cli/main.js, which the rest of the suite also reaches through
 * the bin. Here: every command's --help, word for word, from the bundle alone, from the bin and
 * from main.js; the `_all` bundle for runs that name no command (`--help`, `--version`, a
 * mistyped name); and the V8 code cache the bin keeps beside a bundle (provisional until an
 * ordinary run writes the final one, rewritten when V8 refuses it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../src/cli/program.js';
import { CLI, startServer, TEST_TOKEN, tempDir } from '../helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const bundleOf = (name: string): string => fileURLToPath(new URL(`../../cli/${name}.cjs`, import.meta.url));

/** `node SCRIPT ARGS…` with `env` added to ours: exit code, stdout and stderr. */
function runNode(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('command bundles', { timeout: 120_000 }, () => {
  for (const name of COMMANDS) {
    test(`${name}: bundle, bin and main.js print the same --help`, async () => {
      assert.ok(existsSync(bundleOf(name)), `no bundle for ${name}: run npm run build`);
      const [bundled, bin, main] = await Promise.all([
        runNode(bundleOf(name), [name, '--help']),
        runNode(CLI, [name, '--help']),
        runNode(MAIN, [name, '--help']),
      ]);
      assert.equal(main.code, 0);
      assert.match(main.stdout, new RegExp(`^Usage: sockit ${name} `));
      assert.deepEqual(bundled, main);
      assert.deepEqual(bin, main);
    });
  }

  test('the program-wide options and unknown commands: the _all bundle, the bin and main.js say the same', async () => {
    assert.ok(existsSync(bundleOf('_all')), 'no _all bundle: run npm run build');
    const say = async (args: string[]) => {
      const [all, bin, main] = await Promise.all([
        runNode(bundleOf('_all'), args),
        runNode(CLI, args),
        runNode(MAIN, args),
      ]);
      assert.deepEqual(all, main);
      assert.deepEqual(bin, main);
      return main;
    };
    const version = await say(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const help = await say(['--help']);
    assert.equal(help.code, 0);
    for (const name of COMMANDS) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
    const alone = await say([]);
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /^Usage: sockit /);
    const unknown = await say(['nonsense']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'nonsense'/);
  });

  test('the bin keeps a V8 code cache beside the bundle: provisional after help or a failure, final after an ordinary run', async () => {
    // A copy of the bin and of one bundle in a directory of its own, so that no other test's
    // run of the command writes this cache meanwhile (test files run two at a time).
    const install = await tempDir('sockit-install-');
    mkdirSync(join(install.path, 'bin'));
    mkdirSync(join(install.path, 'build', 'cli'), { recursive: true });
    copyFileSync(CLI, join(install.path, 'bin', 'sockit.cjs'));
    copyFileSync(bundleOf('ping'), join(install.path, 'build', 'cli', 'ping.cjs'));
    // What a bundle's import.meta.url names (build/src), as in a real installation.
    symlinkSync(fileURLToPath(new URL('../../src/', import.meta.url)), join(install.path, 'build', 'src'));
    const cli = join(install.path, 'bin', 'sockit.cjs');
    const hash = /^\/\/ sockit bundle ([0-9a-f]+):/.exec(readFileSync(bundleOf('ping'), 'utf8'))?.[1];
    assert.ok(hash, 'the bundle names its hash on its first line');
    // Named after the bundle's content, its path (8 hex digits) and the V8 that made it.
    const cacheIn = (dir: string, provisional = false): string | undefined => {
      const pattern = new RegExp(
        `^ping\\.${hash}\\.[0-9a-f]{8}\\.${process.versions.v8.replace(/\./g, '\\.')}${provisional ? '\\.provisional' : ''}\\.v8-cache$`,
      );
      const found = readdirSync(dir).find((name) => pattern.test(name));
      return found === undefined ? undefined : join(dir, found);
    };
    const bundleDir = join(install.path, 'build', 'cli');
    const server = await startServer().catch(async (error: unknown) => {
      await install.cleanup();
      throw error;
    });
    const env = { SOCKIT_TOKEN: TEST_TOKEN, SOCKIT_STATE_DIR: server.stateDir };
    try {
      assert.deepEqual(await runNode(cli, ['ping', '--help']), await runNode(MAIN, ['ping', '--help']));
      assert.ok(
        cacheIn(bundleDir, true) && !cacheIn(bundleDir),
        'a help run leaves a provisional cache only',
      );

      assert.equal((await runNode(cli, ['ping', server.address], env)).code, 0);
      const cache = cacheIn(bundleDir);
      assert.ok(cache, 'an ordinary run writes the final cache');
      assert.ok(!cacheIn(bundleDir, true), 'and removes the provisional one');
      const provisional = cache.replace(/\.v8-cache$/, '.provisional.v8-cache');

      // The same files under another path make a cache of their own: V8's cached code keeps the
      // file names it was compiled under, which stack traces would show.
      const moved = join(install.path, 'moved');
      cpSync(join(install.path, 'bin'), join(moved, 'bin'), { recursive: true });
      cpSync(bundleDir, join(moved, 'build', 'cli'), { recursive: true });
      symlinkSync(fileURLToPath(new URL('../../src/', import.meta.url)), join(moved, 'build', 'src'));
      assert.equal((await runNode(join(moved, 'bin', 'sockit.cjs'), ['ping', server.address], env)).code, 0);
      const movedCaches = readdirSync(join(moved, 'build', 'cli')).filter((name) =>
        name.endsWith('.v8-cache'),
      );
      assert.equal(movedCaches.length, 2, movedCaches.join(', '));
      assert.ok(movedCaches.includes(basename(cache)), 'the copied cache is still there');

      writeFileSync(cache, 'not V8 cached data');
      assert.equal((await runNode(cli, ['ping', server.address], env)).code, 0);
      const rewritten = readFileSync(cache);
      assert.notEqual(rewritten.toString('utf8'), 'not V8 cached data', 'a refused cache is written anew');

      const refused = await runNode(cli, ['ping', 'tcp://127.0.0.1:1'], env);
      assert.notEqual(refused.code, 0);
      assert.ok(readFileSync(cache).equals(rewritten), 'a failed run leaves a good cache alone');
      assert.ok(!existsSync(provisional));
    } finally {
      await server.stop();
      await install.cleanup();
    }
  });
});
