/**
 * Build step after tsc: one single-file CommonJS bundle per command, build/cli/<name>.cjs, which
 * bin/sockit.cjs runs for `sockit <name> …`. Why (docs/benchmarks.md, branch startup): Node 20's
 * ESM loader resolves, reads and links each of the ~35 modules of a command one by one, and an
 * ESM import of a built-in module (node:fs, node:crypto, node:net) evaluates every lazy export of
 * it (fs/promises, webcrypto, …); one CommonJS file requires only what runs. The bundles are made
 * from tsc's output (build/src), so they are the same code as build/src/cli/main.js, which stays
 * the full CLI and the fallback.
 *
 * What a bundle must keep: a module's `import.meta.url` still names that module's own file in
 * build/src (the native addons and cli-progress are required relative to it, and try-commands.ts
 * looks at where it is installed). Packages are bundled, commander too: cli/commander.ts's
 * require() of it becomes a plain one that esbuild follows (no package lookup at run time), and
 * commander's own `require('node:child_process')`, there for executable subcommands that sockit
 * has none of, loads child_process on first use instead of at start (with dgram and net's
 * internals, ~2 ms of a command's start-up). Any esbuild warning fails the build.
 *
 * Without esbuild (a production install) nothing is built and bin/sockit.cjs runs main.js.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const buildSrc = join(root, 'build', 'src');
const outdir = join(root, 'build', 'cli');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.warn('sockit: esbuild is not installed; no command bundles (bin/sockit.cjs runs build/src/cli/main.js).');
  process.exit(0);
}

const { COMMANDS } = await import(join(buildSrc, 'cli', 'program.js'));

/** `sockit <name>`'s whole program: main.ts's for one command, without loading the others. */
function entrySource(name) {
  const register = `register${name[0].toUpperCase()}${name.slice(1)}`;
  return [
    `import { createProgram, runProgram } from ${JSON.stringify(join(buildSrc, 'cli', 'program.js'))};`,
    `import { ${register} } from ${JSON.stringify(join(buildSrc, 'cli', 'commands', `${name}.js`))};`,
    'const program = createProgram();',
    `${register}(program);`,
    'void runProgram(program);',
  ].join('\n');
}

/**
 * The `_all` bundle: every command, for the runs that name none (`sockit`, `--help`,
 * `--version`, a mistyped name), which main.js serves by importing all ~150 modules one by one.
 */
const ALL = '_all';

function allEntrySource() {
  const registers = COMMANDS.map((name) => `register${name[0].toUpperCase()}${name.slice(1)}`);
  return [
    `import { runWholeProgram } from ${JSON.stringify(join(buildSrc, 'cli', 'program.js'))};`,
    ...COMMANDS.map(
      (name, at) =>
        `import { ${registers[at]} } from ${JSON.stringify(join(buildSrc, 'cli', 'commands', `${name}.js`))};`,
    ),
    `const registers = { ${COMMANDS.map((name, at) => `${JSON.stringify(name)}: ${registers[at]}`).join(', ')} };`,
    'void runWholeProgram((name) => registers[name]);',
  ].join('\n');
}

/** Serves the generated entries and rewrites `import.meta.url` (see the header). */
const sockitPlugin = {
  name: 'sockit-cli',
  setup(build) {
    build.onResolve({ filter: /^sockit-entry:/ }, (args) => ({ path: args.path, namespace: 'sockit-entry' }));
    build.onLoad({ filter: /.*/, namespace: 'sockit-entry' }, (args) => ({
      contents: args.path === `sockit-entry:${ALL}` ? allEntrySource() : entrySource(args.path.slice('sockit-entry:'.length)),
      resolveDir: root,
      loader: 'js',
    }));
    build.onLoad({ filter: /cli[/\\]commander\.js$/ }, (args) => {
      if (args.path !== join(buildSrc, 'cli', 'commander.js')) return undefined;
      return { contents: commanderSource(readFileSync(args.path, 'utf8')), loader: 'js' };
    });
    build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      args.importer.includes(`${sep}node_modules${sep}commander${sep}`)
        ? { path: 'child_process', namespace: 'sockit-lazy-builtin' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'sockit-lazy-builtin' }, (args) => ({
      contents: `module.exports = new Proxy({}, { get: (_, key) => require('node:${args.path}')[key] });`,
      loader: 'js',
    }));
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(buildSrc)) return undefined;
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return { contents: source, loader: 'js' };
      // The bundle sits in build/cli/, next to build/src/: the module's file, from the bundle's.
      const fromBundle = JSON.stringify(relative(outdir, args.path));
      const ownUrl = `require("node:url").pathToFileURL(require("node:path").join(__dirname, ${fromBundle})).href`;
      return { contents: source.replaceAll('import.meta.url', ownUrl), loader: 'js' };
    });
  },
};

/** cli/commander.js with `createRequire(import.meta.url)('commander')` as a require() esbuild bundles. */
function commanderSource(source) {
  const dynamic = "createRequire(import.meta.url)('commander')";
  if (!source.includes(dynamic)) throw new Error(`cli/commander.js no longer contains ${dynamic}: update bundle-cli.mjs`);
  return source.replace(dynamic, "require('commander')");
}

mkdirSync(outdir, { recursive: true });
const result = await esbuild.build({
  entryPoints: Object.fromEntries([...COMMANDS, ALL].map((name) => [name, `sockit-entry:${name}`])),
  outdir,
  outExtension: { '.js': '.cjs' },
  write: false,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // import() of a built-in (node:tls, node:fs/promises) as require(): bin/sockit.cjs may run a
  // bundle through vm.Script (for its code cache), where import() has no loader.
  supported: { 'dynamic-import': false },
  absWorkingDir: root,
  external: ['cli-progress'],
  plugins: [sockitPlugin],
  logLevel: 'silent',
  legalComments: 'none',
});
if (result.warnings.length > 0) {
  const text = await esbuild.formatMessages(result.warnings, { kind: 'warning' });
  console.error(text.join('\n'));
  console.error('sockit: the command bundles have warnings (see above); fix them or the bundles may differ from main.js.');
  process.exit(1);
}
for (const output of result.outputFiles) {
  if (/\bimport\(/.test(output.text)) {
    console.error(`sockit: ${relative(root, output.path)} still calls import(), which vm.Script cannot run.`);
    process.exit(1);
  }
}

// Each bundle's first line names its content's hash, and bin/sockit.cjs names the V8 code cache
// after it: V8 checks a cache against the source's length only, so a rebuilt bundle of the same
// length must not find the old one. Files are replaced by a rename, whole, for the runs (tests,
// another shell) that may be reading them meanwhile; caches of other contents are removed.
const written = new Set();
for (const output of result.outputFiles) {
  const hash = createHash('sha256').update(output.contents).digest('hex').slice(0, 16);
  const text = `// sockit bundle ${hash}: generated by scripts/bundle-cli.mjs from build/src; edit src/, not this file.\n${output.text}`;
  const temporary = `${output.path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, output.path);
  written.add(basename(output.path));
  written.add(`${basename(output.path, '.cjs')}.${hash}.`);
}
for (const file of readdirSync(outdir)) {
  const cacheOf = /^(\w+\.[0-9a-f]+\.).*\.v8-cache$/.exec(file)?.[1];
  if (!written.has(file) && !(cacheOf !== undefined && written.has(cacheOf))) rmSync(join(outdir, file), { force: true });
}
console.log(`sockit: ${COMMANDS.length} command bundles and ${ALL} in ${relative(root, outdir)}/`);
