import { SOCKIT_VERSION } from '../version.js';
import { Command } from './commander.js';
import { reportError } from './common.js';

/** What each `commands/<name>.ts` exports as `register<Name>`: adds that command to the program. */
export type Register = (program: Command) => void;

/**
 * Every command, by name: `commands/<name>.ts` exports `register<Name>(program)`. main.ts loads
 * them on demand; scripts/bundle-cli.mjs builds one bundle per name for bin/sockit.cjs, and the
 * `_all` bundle of them all for the runs that name none.
 */
export const COMMANDS = [
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
] as const;

/** The `sockit` program with no commands yet: name, version, usage errors (exit 2) and hints. */
export function createProgram(): Command {
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
  return program;
}

/** Parses the command line and runs the command; a failure becomes one line on stderr and an exit code. */
export async function runProgram(program: Command, argv: readonly string[] = process.argv): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (error) {
    reportError(error);
  }
}

/**
 * The whole CLI: the command named on the command line, or every command when none is (`sockit`
 * alone, `--help`, `--version`, a mistyped name: their usage lists them all). `load` gives a
 * command's register function: main.ts imports it on demand, the `_all` bundle has them all.
 */
export async function runWholeProgram(load: (name: string) => Register | Promise<Register>): Promise<void> {
  const program = createProgram();
  try {
    const name = process.argv[2] ?? '';
    const wanted = (COMMANDS as readonly string[]).includes(name) ? [name] : COMMANDS;
    for (const register of await Promise.all(wanted.map(load))) register(program);
    // `sockit` alone: the usage of every command, on stderr, exit 2.
    if (name === '') program.help({ error: true });
  } catch (error) {
    reportError(error);
    return;
  }
  await runProgram(program);
}

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
