import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SockitError } from '../../errors.js';
import { createLogger, type LogLevel } from '../../log.js';
import { type Server, serve } from '../../server/server.js';
import type { Service } from '../../server/service.js';
import { formatAddress, isLoopback } from '../../transport/address.js';
import { SOCKIT_VERSION } from '../../version.js';
import {
  action,
  KEEPALIVE_COUNT_OPTION,
  KEEPALIVE_OPTION,
  keepaliveOptions,
  parseIntOption,
  splitList,
} from '../common.js';
import { SERVE_PLUGINS } from '../serve-plugins.js';
import { untilSignal } from '../signals.js';

/** Where `sockit serve` listens with no address: loopback, a fixed port that is easy to type. */
export const DEFAULT_SERVE_ADDRESS = 'tcp://127.0.0.1:7070';

interface ServeCliOptions {
  tokenFile?: string;
  insecureNoAuth?: boolean;
  open: string;
  cert?: string;
  key?: string;
  stateDir?: string;
  maxConnections?: string;
  idleTimeout?: string;
  maxRequests?: string;
  shutdownDeadline?: string;
  logLevel: LogLevel;
  jsonLogs?: boolean;
  keepalive?: string;
  keepaliveCount?: string;
  [plugin: string]: unknown;
}

export function registerServe(program: Command): void {
  const command = program
    .command('serve')
    .description(`serve the framed protocol on one or more addresses (default ${DEFAULT_SERVE_ADDRESS})`)
    .argument('[address...]', 'tcp://HOST:PORT, tls://HOST:PORT, unix:/PATH or HOST:PORT')
    .option('--token-file <path>', 'token file to read or create (default: <state dir>/token)')
    .option(
      '--insecure-no-auth',
      'DANGER: let anyone who connects use every service, exec and files included',
    )
    .option('--open <services>', 'comma-separated services usable without the token', 'echo')
    .option('--cert <pem>', 'TLS certificate (default: a self-signed one kept in the state dir)')
    .option('--key <pem>', 'TLS private key for --cert')
    .option(
      '--state-dir <dir>',
      'where token and certificate live (default: $SOCKIT_STATE_DIR or ~/.local/state/sockit)',
    )
    .option('--max-connections <n>', 'connections open at once')
    .option('--idle-timeout <ms>', 'close connections idle this long (0 = never)')
    .option('--max-requests <n>', 'open requests per connection')
    .option('--shutdown-deadline <ms>', 'on SIGINT/SIGTERM, wait this long for open requests')
    .option(...KEEPALIVE_OPTION)
    .option(...KEEPALIVE_COUNT_OPTION)
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .option('--json-logs', 'JSON-lines logs even on a terminal');
  for (const plugin of SERVE_PLUGINS) plugin.addOptions(command);
  command.action(
    action(async (addresses: string[], options: ServeCliOptions) => runServe(addresses, options)),
  );
}

async function runServe(addressArgs: string[], options: ServeCliOptions): Promise<void> {
  const log = createLogger({ level: options.logLevel, ...(options.jsonLogs ? { json: true } : {}) });
  const services = SERVE_PLUGINS.map((plugin) => plugin.create(options, log)).filter(
    (service): service is Service => service !== undefined,
  );
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new SockitError('USAGE', '--cert and --key go together');
  }
  const limits = {
    maxConnections: optionalInt(options.maxConnections, '--max-connections'),
    idleTimeoutMs: optionalInt(options.idleTimeout, '--idle-timeout'),
    maxOpenRequests: optionalInt(options.maxRequests, '--max-requests'),
    shutdownDeadlineMs: optionalInt(options.shutdownDeadline, '--shutdown-deadline'),
  };
  const server = await serve({
    listen: addressArgs.length > 0 ? addressArgs : [DEFAULT_SERVE_ADDRESS],
    services,
    openServices: splitList(options.open),
    ...(options.insecureNoAuth ? { insecureNoAuth: true } : {}),
    ...(options.tokenFile !== undefined ? { tokenFile: options.tokenFile } : {}),
    ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
    ...(options.cert !== undefined
      ? { tls: { cert: readFileSync(options.cert), key: readFileSync(options.key!) } }
      : {}),
    limits,
    ...keepaliveOptions(options),
    log,
  });
  printBanner(server, services, options);
  handleSignals(server, log);
}

function optionalInt(value: string | undefined, name: string): number | undefined {
  return value === undefined ? undefined : parseIntOption(value, name);
}

function printBanner(server: Server, services: Service[], options: ServeCliOptions): void {
  const lines = [`sockit ${SOCKIT_VERSION} serving ${services.map((s) => s.name).join(', ')} on:`];
  for (const address of server.addresses) lines.push(`  ${formatAddress(address)}`);
  if (server.tlsFingerprint) lines.push(`TLS fingerprint (SHA-256): ${server.tlsFingerprint}`);
  if (options.insecureNoAuth) {
    lines.push(
      'WARNING: authentication is OFF (--insecure-no-auth): anyone who can connect may use every service.',
    );
  } else if (server.tokenFile) {
    lines.push(`token: ${server.tokenFile}${server.tokenCreated ? ' (created, mode 0600)' : ''}`);
    lines.push(
      `  clients on this machine read it from there; elsewhere: export SOCKIT_TOKEN=$(cat ${server.tokenFile})`,
    );
  }
  const exposed = server.addresses.filter((address) => !isLoopback(address));
  if (exposed.length > 0 && !exposed.every((address) => address.kind === 'tls')) {
    lines.push(
      'WARNING: listening beyond loopback without TLS: traffic is readable on the network (use tls://).',
    );
  }
  const first = formatAddress(server.addresses[0]!);
  lines.push('Try:', ...tryCommands(first, new Set(services.map((service) => service.name))));
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Three commands that show what this server runs, the enabled services first. */
function tryCommands(address: string, running: Set<string>): string[] {
  const examples: [service: string, command: string][] = [
    ['exec', `sockit exec ${address} -- uname -a`],
    ['files', `sockit put README.md ${address} /   then   sockit ls ${address}`],
    ['chat', `sockit chat ${address} --name you`],
    ['echo', `sockit ping ${address}`],
    ['echo', `sockit echo ${address} hello`],
    ['echo', `sockit echo ${address}   (interactive, exit/quit ends it)`],
  ];
  return examples
    .filter(([service]) => running.has(service))
    .slice(0, 3)
    .map(([, command]) => `  ${command}`);
}

/** First SIGINT/SIGTERM: graceful shutdown, then exit 0; a second one exits at once. */
function handleSignals(server: Server, log: ReturnType<typeof createLogger>): void {
  const signal = untilSignal();
  signal.addEventListener('abort', () => {
    log.info('shutting down', { signal: signal.reason, connections: server.connectionCount });
    server.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error('shutdown failed', { error: String(error) });
        process.exit(1);
      },
    );
  });
}
