#!/usr/bin/env node
import { Command } from 'commander';
import { SOCKIT_VERSION } from '../version.js';
import { registerChat } from './commands/chat.js';
import { registerConnect } from './commands/connect.js';
import { registerEcho } from './commands/echo.js';
import { registerExec } from './commands/exec.js';
import { registerGet } from './commands/get.js';
import { registerListen } from './commands/listen.js';
import { registerLs } from './commands/ls.js';
import { registerPing } from './commands/ping.js';
import { registerPut } from './commands/put.js';
import { registerRm } from './commands/rm.js';
import { registerServe } from './commands/serve.js';
import { registerUdp } from './commands/udp.js';
import { reportError } from './common.js';

/** Each command lives in its own module and registers itself on the program. */
const COMMANDS: ((program: Command) => void)[] = [
  registerServe,
  registerPing,
  registerEcho,
  registerExec,
  registerPut,
  registerGet,
  registerLs,
  registerRm,
  registerListen,
  registerConnect,
  registerUdp,
  registerChat,
];

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
for (const register of COMMANDS) register(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  reportError(error);
}
