import { SockitError } from '../errors.js';
import { type Address, parseAddress } from '../transport/address.js';
import type { ExecSpec } from './exec-bridge.js';

/** Parses a raw-mode address; `--udp` makes scheme-less addresses UDP and conflicts with tcp://. */
export function parseRawAddress(text: string, udp: boolean | undefined): Address {
  const address = parseAddress(text, { defaultKind: udp ? 'udp' : 'tcp' });
  if (udp && address.kind !== 'udp') {
    throw new SockitError('USAGE', `--udp and ${text} disagree: write udp://HOST:PORT or drop --udp`);
  }
  return address;
}

/**
 * `--exec tr a-z A-Z` (argv, no shell) or `--sh-exec 'tr a-z A-Z | rev'`. A single --exec value
 * with spaces (`--exec "grep -v x"`) is split on whitespace, as Ncat does, so arguments that
 * start with a dash can be passed.
 */
export function execSpecFrom(exec: string[] | undefined, shExec: string | undefined): ExecSpec | undefined {
  if (exec && shExec !== undefined) throw new SockitError('USAGE', '--exec and --sh-exec exclude each other');
  if (shExec !== undefined) {
    if (shExec.trim() === '') throw new SockitError('USAGE', '--sh-exec needs a command');
    return { shell: shExec };
  }
  if (!exec) return undefined;
  const argv = exec.length === 1 ? exec[0]!.trim().split(/\s+/) : exec;
  if (argv.length === 0 || argv[0] === '') throw new SockitError('USAGE', '--exec needs a command');
  return { argv };
}
