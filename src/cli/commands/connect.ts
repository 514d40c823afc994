import type { Command } from 'commander';
import { SockitError } from '../../errors.js';
import { argParsers } from '../../options.js';
import { execSpecFrom, parseRawAddress } from '../../raw/options.js';
import {
  action,
  addReconnectOptions,
  clientOptions,
  DURATION_HELP,
  EXIT,
  exitCodeFor,
  reportError,
  sayRetry,
} from '../common.js';
import { halfCloseHelp } from '../raw-help.js';

interface ConnectCliOptions {
  udp?: boolean;
  scan?: boolean;
  /** Milliseconds (argParsers.duration). */
  wait?: number;
  idleTimeout?: number;
  exec?: string[];
  shExec?: string;
  sendOnly?: boolean;
  recvOnly?: boolean;
  shutdown: boolean;
  hex?: boolean;
  output?: string;
  verbose?: boolean;
  json?: boolean;
  fingerprint?: string;
  ca?: string;
  knownHosts?: string;
  stateDir?: string;
  proxy?: string;
  reconnect?: boolean;
  reconnectMax?: number;
}

/** `sockit connect`: the netcat-style client side, and `-z` port checks. */
export function registerConnect(program: Command): void {
  const command = program
    .command('connect')
    .description('connect and relay raw bytes (no framing) between the socket and stdin/stdout')
    .argument('<address>', 'tcp://HOST:PORT, tls://…, udp://…, unix:/PATH, HOST:PORT; with -z: HOST:PORTS')
    .option('-u, --udp', 'the address is UDP: each stdin line is one datagram, replies are printed')
    .option('-z, --scan', 'only check which ports accept connections (HOST:20-25,80); exit 0 if any does')
    .option(
      '-w, --wait <duration>',
      `connect timeout (${DURATION_HELP}; default 10s)`,
      argParsers.duration('-w'),
    )
    .option(
      '-i, --idle-timeout <duration>',
      `close the connection after this long without traffic (${DURATION_HELP})`,
      argParsers.duration('-i'),
    )
    .option(
      '-e, --exec <command...>',
      "connect the socket to a process (argv, no shell); put it last, or quote it: -e 'grep -v x'",
    )
    .option('-c, --sh-exec <command>', 'connect the socket to `/bin/sh -c COMMAND`')
    .option('--send-only', 'only send stdin; drop what arrives')
    .option('--recv-only', 'only print what arrives; do not read stdin')
    .option('--no-shutdown', 'keep our write side open after stdin EOF')
    .option('--hex', 'hex dump of both directions to stderr')
    .option('-o, --output <file>', 'log every byte of the session to FILE (mode 0600)')
    .option('-v, --verbose', 'connection messages on stderr')
    .option('--json', 'with -z: print the results as JSON')
    .option('--fingerprint <sha256>', 'TLS: trust only a server certificate with this SHA-256 fingerprint')
    .option('--ca <pem-file>', 'TLS: verify the server against this CA instead of pinning')
    .option('--known-hosts <file>', 'TLS: pinned fingerprints file (default: <state dir>/known_hosts)')
    .option('--state-dir <dir>', 'where pinned fingerprints live (default: $SOCKIT_STATE_DIR)')
    .option('--proxy <url>', 'connect through socks5://HOST:PORT or http://HOST:PORT (HTTP CONNECT)');
  addReconnectOptions(command)
    .addHelpText(
      'after',
      `
${halfCloseHelp('server')}

With --reconnect, input typed while disconnected is queued (up to 64 KiB, then input pauses) and
sent first on the next connection; bytes in flight when a connection drops may be lost.
Exit codes: 0 done, 1 failure, 2 usage, 3 refused/reset, 4 timeout, 6 TLS. With -z: 0 if any port is open, 1 if none.`,
    )
    .action(
      action(async (addressText: string, options: ConnectCliOptions) =>
        runConnectCommand(addressText, options),
      ),
    );
}

async function runConnectCommand(addressText: string, options: ConnectCliOptions): Promise<void> {
  const connectTimeoutMs = options.wait ?? 10_000;
  if (options.scan) {
    const [{ runScan }, { parseScanTarget }] = await Promise.all([
      import('../../raw/connect.js'),
      import('../../raw/scan.js'),
    ]);
    if (options.udp)
      throw new SockitError('USAGE', '-z checks TCP ports; UDP gives no answer to tell open from closed');
    const { host, ports } = parseScanTarget(addressText);
    const anyOpen = await runScan(host, ports, {
      timeoutMs: connectTimeoutMs,
      verbose: options.verbose ?? false,
      json: options.json ?? false,
    });
    process.exitCode = anyOpen ? EXIT.ok : EXIT.failure;
    return;
  }
  const address = parseRawAddress(addressText, options.udp);
  const exec = execSpecFrom(options.exec, options.shExec);
  const { runConnect } = await import('../../raw/connect.js');
  // The same TLS trust (known_hosts, --fingerprint, --ca) and pin notice as the framed clients.
  const { tls, onTlsPin, proxy } = await clientOptions(options);
  if (proxy && address.kind === 'udp') throw new SockitError('USAGE', '--proxy carries streams, not UDP');
  const error = await runConnect({
    address,
    exec,
    shutdown: options.shutdown,
    sendOnly: options.sendOnly ?? false,
    recvOnly: options.recvOnly ?? false,
    connectTimeoutMs,
    idleTimeoutMs: options.idleTimeout,
    hex: options.hex ?? false,
    logFile: options.output,
    verbose: options.verbose ?? false,
    ...(tls ? { tls } : {}),
    ...(onTlsPin ? { onTlsPin } : {}),
    ...(proxy ? { proxy } : {}),
    reconnect: options.reconnect ? { maxAttempts: options.reconnectMax, onRetry: sayRetry } : undefined,
  });
  if (error) reportError(error);
  process.exit(error ? exitCodeFor(error) : 0);
}
