import type { Command } from 'commander';
import { addClientOptions, collect } from '../common.js';
import { EXEC_EXIT, printError } from '../exec-common.js';
import { addTerminalOptions } from '../terminal.js';
import { type ExecCliOptions, parseEnvAndTimeout, runRemote } from './exec.js';

/**
 * `sockit shell ADDR`: an interactive shell on the server, like `ssh HOST`: the server user's
 * login shell (or the server's --shell-command) in a pseudo-terminal when local stdin is a
 * terminal, the local terminal raw until it ends. The exit status is the shell's, as in exec.
 */
export function registerShell(program: Command): void {
  const command = addClientOptions(
    program
      .command('shell')
      .description(
        "an interactive shell on a server, like `ssh HOST` (the server's login shell or --shell-command; " +
          'the server needs --allow-pty)',
      )
      .argument('<address>', 'server address')
      .option(
        '--timeout <ms>',
        'kill the shell (its whole process group) after this long; the server caps it',
      )
      .option('--cwd <dir>', 'working directory on the server')
      .option('-e, --env <K=V>', 'set a variable for the shell (repeatable)', collect, []),
  );
  addTerminalOptions(command, 'a pseudo-terminal (the default when local stdin is a terminal)')
    .addHelpText(
      'after',
      '\nWithout a local terminal the shell reads stdin through pipes (with a warning), unless -tt.\n' +
        "Exit status: the shell's own; 128+N when it died of signal N; 255 connection or authentication failure.\n" +
        '\nExample: sockit shell 127.0.0.1:7070',
    )
    .action(async (address: string, options: ExecCliOptions) => {
      let request: ReturnType<typeof parseEnvAndTimeout>;
      try {
        request = parseEnvAndTimeout(options);
      } catch (error) {
        printError(error);
        process.exitCode = EXEC_EXIT.usage;
        return;
      }
      process.exitCode = await runRemote(
        address,
        { command: { login: true }, ...request },
        { ...options, stdin: true },
        true,
      );
    });
}
