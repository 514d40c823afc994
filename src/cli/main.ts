#!/usr/bin/env node
import { Command } from 'commander';
import { SOCKIT_VERSION } from '../version.js';
import { reportError } from './common.js';

type Register = (program: Command) => void;

/**
 * Each command lives in `commands/<name>.ts` and exports `register<Name>(program)`. Modules load
 * on demand: a run of `sockit exec` loads the exec command only, which keeps start-up close to
 * bare `node` (see docs/benchmarks.md). `--help` and unknown commands load them all.
 */
const COMMANDS = [
  'serve',
  'ping',
  'echo',
  'exec',
  'put',
  'get',
  'ls',
  'rm',
  'listen',
  'connect',
  'udp',
  'chat',
  'forward',
  'chaos',
  'tunnel',
];

async function loadCommand(name: string): Promise<Register> {
  const module = (await import(`./commands/${name}.js`)) as Record<string, Register>;
  return module[`register${name[0]!.toUpperCase()}${name.slice(1)}`]!;
}

const program = new Command('sockit')
  .description(
    'A socket toolkit: framed protocol server and client, remote exec, file transfer, chat, raw mode',
  )
  .version(SOCKIT_VERSION)
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(text) });
program.exitOverride((error) => {
  process.exit(error.exitCode === 1 && error.code !== 'commander.help' ? 2 : error.exitCode);
});

try {
  const name = process.argv[2] ?? '';
  const wanted = COMMANDS.includes(name) ? [name] : COMMANDS;
  for (const register of await Promise.all(wanted.map(loadCommand))) register(program);
  await program.parseAsync(process.argv);
} catch (error) {
  reportError(error);
}
