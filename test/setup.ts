/**
 * Loaded into every test file's process by `node --test --import ./build/test/setup.js` (package.json
 * "test", .ci/other-nodes). It makes the suite hermetic and checks that each file cleans up:
 *
 * - HOME, the XDG directories, SOCKIT_STATE_DIR and TMPDIR point at fresh temp dirs (removed at exit), so no
 *   test, and no CLI a test spawns (they inherit process.env), reads or writes the user's token,
 *   certificate or known_hosts. The user's SOCKIT_TOKEN is dropped for the same reason.
 * - The real state dir is fingerprinted at start and compared at exit: a change fails the file.
 * - After the file's tests, the open handles (process.getActiveResourcesInfo()) must return to what
 *   they were when this module loaded; a file that leaves a socket, server, child or timer open fails,
 *   naming what leaked, and exits instead of hanging the run.
 *
 * The runner's parent process (Node 22+ may load --import there too) only spawns the files: it is
 * left alone.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { defaultStateDir } from '../src/state.js';

/** How long after the file's last test its handles may take to close before it counts as a leak. */
const LEAK_GRACE_MS = Number(process.env.SOCKIT_TEST_LEAK_GRACE_MS) || 5000;

/** Paths of the hermetic environment (all under `root`) and of the real state dir it replaces. */
export interface SuiteEnvironment {
  /** The temp dir holding everything below; removed when the process exits. */
  root: string;
  home: string;
  stateDir: string;
  /** TMPDIR, so os.tmpdir() and every tempDir() of the file. */
  tmp: string;
  /** The state dir sockit would have used without this setup (from the original environment). */
  realStateDir: string;
}

/** A file's observable state: kind, size, mtime and (for small files) a content hash. */
function fingerprint(path: string): string {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    return 'absent';
  }
  if (!stat.isFile()) return `${stat.isDirectory() ? 'dir' : 'other'} ${stat.mtimeMs}`;
  const hash =
    stat.size <= 1024 * 1024 ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'big';
  return `file ${stat.size} ${stat.mtimeMs} ${hash}`;
}

/** Fingerprints of a directory and every entry in it (a state dir is flat). */
function snapshot(dir: string): Map<string, string> {
  const entries = new Map([[dir, fingerprint(dir)]]);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // absent or unreadable: the directory's own fingerprint says so
  }
  for (const name of names) entries.set(join(dir, name), fingerprint(join(dir, name)));
  return entries;
}

/** What differs between two snapshots, one line per path. */
function changes(before: Map<string, string>, now: Map<string, string>): string[] {
  const paths = new Set([...before.keys(), ...now.keys()]);
  return [...paths]
    .filter((path) => before.get(path) !== now.get(path))
    .map((path) => `${path}: ${before.get(path) ?? 'absent'} → ${now.get(path) ?? 'absent'}`);
}

/** Counts by resource type, e.g. { TCPSocketWrap: 2, Timeout: 1 }. */
function countResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** Resource types above the baseline, as `TCPServerWrap ×1`. */
function excess(baseline: Map<string, number>): string[] {
  return [...countResources()]
    .filter(([type, count]) => count > (baseline.get(type) ?? 0))
    .map(([type, count]) => `${type} ×${count - (baseline.get(type) ?? 0)}`);
}

/** Best-effort details of the open handles (addresses, pids), to say which server or child leaked. */
function describeHandles(): string[] {
  const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
  return handles.flatMap((handle): string[] => {
    const h = handle as {
      constructor?: { name?: string };
      address?: () => unknown;
      pid?: number;
      spawnfile?: string;
      spawnargs?: string[];
      remotePort?: number;
      localPort?: number;
      _isStdio?: boolean;
      fd?: number;
    };
    if (h._isStdio || (typeof h.fd === 'number' && h.fd <= 2)) return [];
    const name = h.constructor?.name ?? typeof handle;
    if (typeof h.pid === 'number')
      return [`${name} pid ${h.pid}: ${(h.spawnargs ?? [h.spawnfile]).join(' ')}`];
    if (name === 'Socket' && h.localPort !== undefined)
      return [`Socket ${h.localPort} → ${h.remotePort ?? '?'}`];
    if (typeof h.address === 'function') {
      try {
        return [`${name} ${JSON.stringify(h.address())}`];
      } catch {
        return [name];
      }
    }
    return [name];
  });
}

/**
 * After the file's tests (a root `after` hook, which runs before the file's own root hooks), watch
 * the handles until they are back to the baseline. The watch is unref'd: a clean file exits on its
 * own. If something is still open after the grace period, report it and exit 1, which fails the
 * file in the runner instead of leaving it waiting forever on a ref'd handle.
 */
function checkLeaksAfterTests(file: string, baseline: Map<string, number>): void {
  after(() => {
    const deadline = Date.now() + LEAK_GRACE_MS;
    const poll = (): void => {
      const leaked = excess(baseline);
      if (leaked.length === 0) return;
      if (Date.now() < deadline) {
        setTimeout(poll, 50).unref();
        return;
      }
      const details = describeHandles();
      process.stderr.write(
        `leak check: ${file} left open after its tests: ${leaked.join(', ')}` +
          (details.length > 0 ? ` (${details.join('; ')})` : '') +
          '\n',
      );
      process.exit(1);
    };
    setTimeout(poll, 50).unref();
  });
}

/** Points the environment at fresh temp dirs and arms the checks; returns the paths. */
function install(): SuiteEnvironment {
  const realStateDir = defaultStateDir(process.env);
  const before = snapshot(realStateDir);
  const root = mkdtempSync(join(tmpdir(), 'sockit-suite-'));
  const dir = (name: string): string => {
    const path = join(root, name);
    mkdirSync(path, { recursive: true, mode: 0o700 });
    return path;
  };
  const env: SuiteEnvironment = {
    root,
    home: dir('home'),
    stateDir: dir('state/sockit'),
    tmp: dir('tmp'),
    realStateDir,
  };
  process.env.HOME = env.home;
  process.env.XDG_CONFIG_HOME = dir('config');
  process.env.XDG_STATE_HOME = dir('state');
  process.env.XDG_DATA_HOME = dir('data');
  process.env.XDG_CACHE_HOME = dir('cache');
  process.env.SOCKIT_STATE_DIR = env.stateDir;
  // Every tempDir() of the file lands here too: removed at exit even when a test fails before its
  // cleanup, and no test sees what others left in the shared /tmp.
  process.env.TMPDIR = env.tmp;
  delete process.env.SOCKIT_TOKEN;

  const file = process.argv[1] ?? '(unknown file)';
  process.on('exit', () => {
    rmSync(root, { recursive: true, force: true });
    const changed = changes(before, snapshot(realStateDir));
    if (changed.length > 0) {
      process.stderr.write(
        `hermetic check: ${file} changed the real state dir:\n  ${changed.join('\n  ')}\n`,
      );
      process.exitCode = 1;
    }
  });
  checkLeaksAfterTests(file, countResources());
  return env;
}

/** True in the runner's parent process (it only spawns one child per file; nothing to set up there). */
const isRunnerParent = !process.env.NODE_TEST_CONTEXT && process.execArgv.some((arg) => /^--test$/.test(arg));

/** The hermetic environment of this test process (undefined only in the runner's parent). */
export const suite: SuiteEnvironment | undefined = isRunnerParent ? undefined : install();
