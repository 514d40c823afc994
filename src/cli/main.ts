#!/usr/bin/env node
import module from 'node:module';
import { SOCKIT_VERSION } from '../version.js';
import { Command } from './commander.js';
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
  'shell',
  'put',
  'get',
  'ls',
  'rm',
  'sync',
  'listen',
  'connect',
  'udp',
  'chat',
  'forward',
  'chaos',
  'tunnel',
];

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

const program = new Command('sockit')
  .description(
    'A socket toolkit: framed protocol server and client, remote exec, file transfer, chat, raw mode',
  )
  .version(SOCKIT_VERSION)
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(withHint(text)) });
// Every usage mistake exits 2, `sockit` alone included (its usage goes to stderr).
program.exitOverride((error) => {
  process.exit(error.exitCode === 1 ? 2 : error.exitCode);
});

/**
 * `sockit exec ADDR ls -la` reads `-la` as an option of exec: say where the command's own
 * options go instead of leaving the user with "unknown option".
 */
function withHint(text: string): string {
  const unknown = /unknown option '([^']+)'/.exec(text);
  const [command, address, ...words] = process.argv.slice(2);
  if (!unknown || command !== 'exec') return text;
  const example =
    address !== undefined && !address.startsWith('-') && words.length > 0
      ? `sockit exec ${address} -- ${words.join(' ')}`
      : `sockit exec ADDRESS -- CMD ${unknown[1]}`;
  return `${text}hint: put the command after "--" so that ${unknown[1]} reaches it: ${example}\n`;
}

try {
  const name = process.argv[2] ?? '';
  if (name === '') {
    for (const register of await Promise.all(COMMANDS.map(loadCommand))) register(program);
    program.help({ error: true });
  }
  const wanted = COMMANDS.includes(name) ? [name] : COMMANDS;
  for (const register of await Promise.all(wanted.map(loadCommand))) register(program);
  await program.parseAsync(process.argv);
} catch (error) {
  reportError(error);
}
