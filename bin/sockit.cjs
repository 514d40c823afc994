#!/usr/bin/env node
/**
 * `sockit` as installed (package.json "bin"). `sockit <command> …` runs that command's
 * single-file bundle, build/cli/<command>.cjs (scripts/bundle-cli.mjs): one file to read and
 * compile instead of ~35 ES modules, about a quarter of a short command's start-up on Node 20
 * (docs/benchmarks.md, branch startup). Everything else — `sockit`, `--help`, `--version`, a
 * mistyped command, a build without the bundles — runs build/src/cli/main.js, the same program
 * from tsc's output, module by module.
 *
 * CommonJS on purpose: an ES module entry would start Node's ESM loader for this one file.
 */
'use strict';

const { join } = require('node:path');

// Node >= 22.1: V8's compiled code of the bundle (or of main.js's modules) is kept between runs.
require('node:module').enableCompileCache?.();

const name = process.argv[2] ?? '';
const bundle = /^[a-z]+$/.test(name) ? join(__dirname, '..', 'build', 'cli', `${name}.cjs`) : undefined;

try {
  if (bundle === undefined) runMain();
  else require(bundle);
} catch (error) {
  // Only the bundle itself missing falls back; anything failing inside it is a real error.
  const missing = error?.code === 'MODULE_NOT_FOUND' && String(error.message).split('\n')[0].includes(bundle);
  if (!missing) throw error;
  runMain();
}

function runMain() {
  import('../build/src/cli/main.js').catch((error) => {
    process.stderr.write(`sockit: ${error?.message ?? error}\n`);
    process.exitCode = 1;
  });
}
