#!/usr/bin/env node
import { Command } from 'commander';
import { SOCKIT_VERSION } from '../version.js';
import { reportError } from './common.js';

type Register = (program: Command) => void;

/**
 * Each command lives in its own module and registers itself on the program. Modules load on
 * demand: a run of `sockit exec` loads the exec command only, which keeps start-up close to
 * bare `node` (see docs/benchmarks.md). `--help` and unknown commands load them all.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  serve: async () => (await import('./commands/serve.js')).registerServe,
  ping: async () => (await import('./commands/ping.js')).registerPing,
  echo: async () => (await import('./commands/echo.js')).registerEcho,
  exec: async () => (await import('./commands/exec.js')).registerExec,
  put: async () => (await import('./commands/put.js')).registerPut,
  get: async () => (await import('./commands/get.js')).registerGet,
  ls: async () => (await import('./commands/ls.js')).registerLs,
  rm: async () => (await import('./commands/rm.js')).registerRm,
  listen: async () => (await import('./commands/listen.js')).registerListen,
  connect: async () => (await import('./commands/connect.js')).registerConnect,
  udp: async () => (await import('./commands/udp.js')).registerUdp,
  chat: async () => (await import('./commands/chat.js')).registerChat,
};

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
  const loaders = Object.hasOwn(COMMANDS, name) ? [COMMANDS[name]!] : Object.values(COMMANDS);
  for (const register of await Promise.all(loaders.map((load) => load()))) register(program);
  await program.parseAsync(process.argv);
} catch (error) {
  reportError(error);
}
