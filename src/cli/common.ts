import { join } from 'node:path';
import type { Client, ConnectOptions } from '../client/client.js';
import { type ErrorCode, fromFileError, SockitError } from '../errors.js';
import { argParsers, parseDuration, parsePositiveInteger } from '../options.js';
import { defaultStateDir } from '../state.js';
import type { RetryInfo } from '../transport/backoff.js';
import { applyClientConfig, loadClientConfig } from './client-config.js';
import { type Command, Option } from './commander.js';

/** Process exit codes of every sockit command (README "Exit codes"). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  connect: 3,
  timeout: 4,
  auth: 5,
  tls: 6,
  /** Ctrl-C (128 + SIGINT), as a shell reports it. */
  interrupted: 130,
} as const;

const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  USAGE: EXIT.usage,
  INVALID_OPTION: EXIT.usage,
  CANCELLED: EXIT.interrupted,
  CONNECT_FAILED: EXIT.connect,
  CLOSED: EXIT.connect,
  TIMEOUT: EXIT.timeout,
  AUTH_FAILED: EXIT.auth,
  AUTH_REQUIRED: EXIT.auth,
  TLS_FINGERPRINT_CHANGED: EXIT.tls,
  TLS_FAILED: EXIT.tls,
};

/** The exit code for an error: see EXIT. */
export function exitCodeFor(error: unknown): number {
  return error instanceof SockitError ? (EXIT_BY_CODE[error.code] ?? EXIT.failure) : EXIT.failure;
}

/** Prints one line — `sockit: CODE: message` — never a stack trace, and sets the exit code. */
export function reportError(error: unknown, exitCode = exitCodeFor(error)): void {
  const message =
    error instanceof SockitError
      ? `${error.code}: ${error.message}`
      : error instanceof Error
        ? error.message
        : String(error);
  process.stderr.write(`sockit: ${message}\n`);
  if (process.env.SOCKIT_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exitCode = exitCode;
}

/** Options every client command takes. */
export interface ClientCliOptions {
  tokenFile?: string;
  fingerprint?: string;
  ca?: string;
  knownHosts?: string;
  stateDir?: string;
  /** Milliseconds, parsed by argParsers.duration. */
  connectTimeout?: number;
  verbose?: boolean;
  proxy?: string;
  keepalive?: string;
  keepaliveCount?: string;
  /** `-F FILE` (a path), `--no-config` (false), or neither. */
  config?: string | false;
}

/** Adds the client options (token, TLS trust, state dir, connect timeout) to a command. */
export function addClientOptions(command: Command): Command {
  return command
    .option(
      '--token-file <path>',
      'read the token from this file (wins over $SOCKIT_TOKEN; default: $SOCKIT_TOKEN, then the state dir)',
    )
    .option('--fingerprint <sha256>', 'TLS: trust only a server certificate with this SHA-256 fingerprint')
    .option('--ca <pem-file>', 'TLS: verify the server against this CA instead of pinning')
    .option('--known-hosts <file>', 'TLS: pinned fingerprints file (default: <state dir>/known_hosts)')
    .option('--state-dir <dir>', 'where tokens, certificates and pins live (default: $SOCKIT_STATE_DIR)')
    .addOption(
      new Option('--connect-timeout <duration>', `give up connecting after this long (${DURATION_HELP})`)
        .argParser(argParsers.duration('--connect-timeout'))
        .default(10_000, '10s'),
    )
    .option('--proxy <url>', 'connect through socks5://HOST:PORT or http://HOST:PORT (HTTP CONNECT)')
    .option(...KEEPALIVE_OPTION)
    .option(...KEEPALIVE_COUNT_OPTION)
    .option(
      '-F, --config <file>',
      'client config file: host aliases and their settings (default: $XDG_CONFIG_HOME/sockit/config)',
    )
    .option('--no-config', 'ignore the client config file');
}

/** `--keepalive INTERVAL` of the client and the server. */
export const KEEPALIVE_OPTION = [
  '--keepalive <interval>',
  'ping the peer after this much silence (duration, e.g. 5s, 300ms, 1m; a bare number is seconds; 0 = off; default 15s)',
] as const;

/** `--keepalive-count N` of the client and the server. */
export const KEEPALIVE_COUNT_OPTION = [
  '--keepalive-count <n>',
  'unanswered pings before the peer counts as gone (default 3)',
] as const;

/** `--keepalive` / `--keepalive-count` as connect()/serve() options (unset ones left to the defaults). */
export function keepaliveOptions(options: { keepalive?: string; keepaliveCount?: string }): {
  keepaliveMs?: number;
  keepaliveCount?: number;
} {
  const result: { keepaliveMs?: number; keepaliveCount?: number } = {};
  if (options.keepalive !== undefined) result.keepaliveMs = parseDuration(options.keepalive, '--keepalive');
  if (options.keepaliveCount !== undefined) {
    result.keepaliveCount = parsePositiveInteger(options.keepaliveCount, '--keepalive-count');
  }
  return result;
}

/** What every duration option's help says (src/options.ts parseDuration). */
export const DURATION_HELP = 'duration, e.g. 5s, 500ms, 2m; a bare number is seconds';

/** `"a, b,,c"` → `['a', 'b', 'c']`: the comma-separated lists of options like `--open`. */
export function splitList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Commander reducer for a repeatable option (`--env A=1 --env B=2`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Turns CLI options into `connect()` options. */
export async function clientOptions(options: ClientCliOptions): Promise<ConnectOptions> {
  const stateDir = options.stateDir ?? defaultStateDir();
  const result: ConnectOptions = {
    ...keepaliveOptions(options),
    stateDir,
    connectTimeoutMs: options.connectTimeout ?? 10_000,
    tls: { knownHostsFile: options.knownHosts ?? join(stateDir, 'known_hosts') },
    onTlsPin: ({ fingerprint, status }) => {
      if (status === 'pinned') process.stderr.write(`sockit: pinned new TLS fingerprint ${fingerprint}\n`);
    },
  };
  if (options.tokenFile !== undefined) result.tokenFile = options.tokenFile;
  if (options.proxy !== undefined) {
    const { parseProxy } = await import('../transport/proxy.js');
    result.proxy = parseProxy(options.proxy);
  }
  if (options.fingerprint !== undefined) result.tls!.fingerprint = options.fingerprint;
  if (options.ca !== undefined) {
    const { readFile } = await import('node:fs/promises');
    const ca = options.ca;
    result.tls!.ca = await readFile(ca).catch((error: unknown) => {
      throw fromFileError(error, ca, 'cannot read CA certificate');
    });
  }
  return result;
}

/** Connects with the CLI options, runs `work`, and always closes the client. */
export async function withClient<T>(
  address: string,
  options: ClientCliOptions,
  work: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await (await configuredConnector(address, options))();
  let result: T;
  try {
    result = await work(client);
  } catch (error) {
    // The command failed: requests it left open are cancelled, not waited for.
    client.destroy();
    throw error;
  }
  await client.close();
  return result;
}

/**
 * The client config file applied to `address` and the CLI options, once: the function it
 * returns connects with them, as often as the caller needs (a reconnecting chat). `extra` is
 * what the command itself adds to the connect() options (a tunnel's `requestTimeoutMs: 0`).
 */
export async function configuredConnector(
  address: string,
  options: ClientCliOptions,
  extra: Partial<ConnectOptions> = {},
): Promise<() => Promise<Client>> {
  const { connect } = await import('../client/client.js');
  const configured = applyClientConfig(address, options, loadClientConfig(options.config));
  const connectOptions = { ...(await clientOptions(configured.options)), ...extra };
  return () => connect(configured.address, connectOptions);
}

/** `--reconnect` / `--reconnect-max N` of the clients that outlive their connection (chat, connect). */
export function addReconnectOptions(command: Command): Command {
  return command
    .option(
      '--reconnect',
      'when the connection drops, reconnect with exponential backoff and jitter (first wait up to 250ms, doubling to 30s)',
    )
    .addOption(
      new Option(
        '--reconnect-max <n>',
        'with --reconnect: give up after N failed attempts in a row (default: never)',
      ).argParser(argParsers.positive('--reconnect-max')),
    );
}

/** The stderr line before each reconnect wait: what failed, and when the next attempt is. */
export function sayRetry(info: RetryInfo): void {
  const failed =
    info.error === undefined
      ? ''
      : `attempt ${info.attempt - 1} failed (${info.error instanceof Error ? info.error.message : String(info.error)}); `;
  process.stderr.write(`sockit: ${failed}reconnecting in ${info.delayMs} ms\n`);
}

/** Wraps a command action so every failure ends as one line on stderr and an exit code. */
export function action<A extends unknown[]>(
  run: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      reportError(error);
    }
  };
}
