#!/usr/bin/env node
import module from 'node:module';
import { type Register, runWholeProgram } from './program.js';

/**
 * The whole CLI from tsc's output, each command in `commands/<name>.ts`. Modules load on
 * demand: a run of `sockit exec` loads the exec command only; `--help` and unknown commands load
 * them all. The installed `sockit` (bin/sockit.cjs) runs a single-file bundle instead when there
 * is one (a command's own, else `_all`), and this file otherwise (docs/benchmarks.md, branch startup).
 */

/**
 * Node ≥ 22.1 keeps V8's compiled code of the modules loaded after this call (the command
 * modules, imported below on demand) in a cache directory, so later runs skip compiling them.
 * Older Nodes have no such call and go without. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

async function loadCommand(name: string): Promise<Register> {
  const module = (await import(`./commands/${name}.js`)) as Record<string, Register>;
  return module[`register${name[0]!.toUpperCase()}${name.slice(1)}`]!;
}

await runWholeProgram(loadCommand);
