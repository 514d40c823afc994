import { dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Address } from '../transport/address.js';
import { formatAddress } from '../transport/address.js';

/** What `sockit serve` runs, as far as its example commands care. */
export interface TryContext {
  /** The first bound address (port 0 resolved). */
  address: Address;
  /** Names of the services running. */
  services: ReadonlySet<string>;
  /** `--exec-allow` programs, or 'any' for `--exec`; undefined without exec. */
  execAllow: 'any' | readonly string[] | undefined;
}

/** Arguments that make a good first run of a program the operator allowed. */
const EXAMPLE_ARGS: Record<string, string> = {
  uname: 'uname -a',
  echo: 'echo hello',
  ls: 'ls -la',
  date: 'date',
  whoami: 'whoami',
  hostname: 'hostname',
  cat: 'cat /etc/hostname',
  printf: "printf '%s\\n' hello",
};

/**
 * How to type `sockit` here: inside a checkout the command is not on PATH after `npm ci`, but
 * `npx sockit` runs the checkout's own bin; an installed package (under node_modules, or a
 * global install) has `sockit` on PATH.
 */
export function sockitCommand(entry: string = fileURLToPath(import.meta.url)): string {
  return dirname(entry).split(sep).includes('node_modules') ? 'sockit' : 'npx sockit';
}

/**
 * An address a client can dial, ready for a shell: a wildcard bind (`0.0.0.0`, `[::]`) is
 * reached over loopback, and `[::1]` is quoted (brackets are glob characters; zsh refuses an
 * unmatched glob).
 */
export function connectableAddress(address: Address): string {
  let text = formatAddress(address);
  if (address.kind !== 'unix' && address.host === '0.0.0.0') {
    text = formatAddress({ ...address, host: '127.0.0.1' });
  } else if (address.kind !== 'unix' && address.host === '::') {
    text = formatAddress({ ...address, host: '::1' });
  }
  return shellWord(text);
}

/** `text` as one shell word: as it is when it is plain, else in single quotes. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** The command line for exec's example: a program the server allows, never one it refuses. */
function execExample(allow: 'any' | readonly string[]): string {
  if (allow === 'any') return EXAMPLE_ARGS.uname!;
  const known = allow.find((program) => EXAMPLE_ARGS[program] !== undefined);
  if (known) return EXAMPLE_ARGS[known]!;
  return allow[0]!;
}

/**
 * Up to four commands, each runnable exactly as printed, that show what this server runs: the
 * enabled services first, then echo. Clients on this machine find the token in the same state
 * directory, so none needs an extra option.
 */
export function tryCommands(context: TryContext, sockit: string = sockitCommand()): string[] {
  const address = connectableAddress(context.address);
  const running = context.services;
  const examples: [service: string, command: string][] = [];
  if (context.execAllow !== undefined) {
    examples.push(['exec', `${sockit} exec ${address} -- ${execExample(context.execAllow)}`]);
  }
  examples.push(
    ['files', `${sockit} put README.md ${address} /`],
    ['files', `${sockit} ls ${address} /`],
    ['chat', `${sockit} chat ${address} --name you`],
    ['echo', `${sockit} ping ${address}`],
    ['echo', `${sockit} echo ${address} hello`],
  );
  return examples
    .filter(([service]) => running.has(service))
    .slice(0, 4)
    .map(([, command]) => command);
}
