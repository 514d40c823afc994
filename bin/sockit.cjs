#!/usr/bin/env node
/**
 * `sockit` as installed (package.json "bin"). `sockit <command> …` runs that command's
 * single-file bundle, build/cli/<command>.cjs (scripts/bundle-cli.mjs): one file to read and
 * compile instead of ~35 ES modules (docs/benchmarks.md, branch startup). Everything else —
 * `sockit`, `--help`, `--version`, a mistyped command — runs build/cli/_all.cjs, every command
 * in one bundle; a build without the bundles runs build/src/cli/main.js, the same program from
 * tsc's output, module by module.
 *
 * Compiled code is kept between runs: the bundle runs through vm.Script with V8's cached data in
 * build/cli/<command>.<hash>.<path tag>.<V8 version>.v8-cache, beside the bundle and so as
 * trusted as it, named after the hash of the bundle's content that its first line gives (V8
 * itself compares only the source's length) and after the bundle's path, and written at the
 * first ordinary run's exit (exit 0, no help asked), so that it holds the functions that run
 * compiled, not only the top level; until then a `.provisional.v8-cache` of an earlier run
 * serves. Node 22's module.enableCompileCache() keeps only the latter for a CommonJS file (51 KB
 * against 240 KB for exec, ~10 ms of CPU more per run), so it serves main.js only. V8 refuses data made under other flags, and the cache is
 * then written anew; where the directory is read-only there is simply no cache.
 *
 * CommonJS on purpose: an ES module entry would start Node's ESM loader for this one file.
 */
'use strict';

const { dirname, join } = require('node:path');
const nodeModule = require('node:module');

const name = process.argv[2] ?? '';
const bundles = join(__dirname, '..', 'build', 'cli');
const bundle = /^[a-z]+$/.test(name) ? join(bundles, `${name}.cjs`) : undefined;
// No command named (`sockit`, `--help`, `--version`) or no such bundle: the one of every command.
if ((bundle === undefined || !runBundle(bundle)) && !runBundle(join(bundles, '_all.cjs'))) runMain();

/** Runs a bundle; false when it does not exist. Errors inside it propagate as they would. */
function runBundle(file) {
  const { readFileSync } = require('node:fs');
  let source;
  try {
    source = readFileSync(file, 'utf8');
  } catch (error) {
    if (error?.code === 'ENOENT') return false;
    throw error;
  }
  const hash = /^\/\/ sockit bundle ([0-9a-f]+):/.exec(source)?.[1];
  // The bundle's own path is part of the name: V8's cached code keeps the file name it was made
  // under, and a copied tree would otherwise name the original's files in its stack traces.
  const cacheFile =
    hash === undefined ? undefined : file.replace(/\.cjs$/, `.${hash}.${pathTag(file)}.${process.versions.v8}.v8-cache`);
  const provisionalFile = cacheFile?.replace(/\.v8-cache$/, '.provisional.v8-cache');
  let cachedData;
  let provisional = false;
  if (cacheFile !== undefined) {
    cachedData = readIfThere(cacheFile);
    if (cachedData === undefined) {
      cachedData = readIfThere(provisionalFile);
      provisional = cachedData !== undefined;
    }
  }
  const { Script } = require('node:vm');
  const script = new Script(nodeModule.wrap(source), { filename: file, cachedData });
  const rejected = cachedData !== undefined && script.cachedDataRejected;
  if (cacheFile !== undefined && (cachedData === undefined || provisional || rejected)) {
    // A cache holds what its run compiled: one of `exec --help` or of a failed connect would
    // leave every later `exec` compiling the rest anew. Such a run's cache is provisional, used
    // until an ordinary run (exit 0, no help asked) replaces it with the final one.
    process.once('exit', (code) => {
      if (code === 0 && !asksForHelp(process.argv.slice(2))) {
        saveCache(script, cacheFile);
        if (provisional) require('node:fs').rmSync(provisionalFile, { force: true });
      } else if (!provisional || rejected) {
        saveCache(script, provisionalFile);
      }
    });
  }
  const bundleModule = { exports: {}, filename: file, id: file };
  script
    .runInThisContext()
    .call(bundleModule.exports, bundleModule.exports, nodeModule.createRequire(file), bundleModule, file, dirname(file));
  return true;
}

/** A short FNV-1a hash of a path, in hex: no crypto module to load at every start. */
function pathTag(path) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) hash = Math.imul(hash ^ path.charCodeAt(i), 0x01000193);
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/** The file's bytes, or undefined when it is missing or unreadable (then compiled from source). */
function readIfThere(path) {
  try {
    return require('node:fs').readFileSync(path);
  } catch {
    return undefined;
  }
}

/** Whether the command line asks for usage (`-h`, `--help`, `help`) before any `--`. */
function asksForHelp(args) {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '-h' || arg === '--help' || arg === 'help');
}

/** Writes the cache through a temporary file and a rename: concurrent runs never read half of one. */
function saveCache(script, cacheFile) {
  const { renameSync, rmSync, writeFileSync } = require('node:fs');
  const temporary = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, script.createCachedData());
    renameSync(temporary, cacheFile);
  } catch {
    // A read-only installation: runs go on without a cache.
    rmSync(temporary, { force: true });
  }
}

function runMain() {
  // Node >= 22.1: V8's compiled code of main.js's modules is kept between runs.
  nodeModule.enableCompileCache?.();
  import('../build/src/cli/main.js').catch((error) => {
    process.stderr.write(`sockit: ${error?.message ?? error}\n`);
    process.exitCode = 1;
  });
}
