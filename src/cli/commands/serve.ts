import { type Bus, redactBusUrl } from '../../bus/bus.js';
import { SockitError } from '../../errors.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../log.js';
import { argParsers, parseChoiceList } from '../../options.js';
import type { ServerObserver } from '../../server/observer.js';
import { type Server, serve } from '../../server/server.js';
import type { Service } from '../../server/service.js';
import { serverTls } from '../../server/tls.js';
import { defaultStateDir, loadOrCreateToken, tokenPath } from '../../state.js';
import { formatAddress, isLoopback, parseListenTarget } from '../../transport/address.js';
import { readCertificateFiles } from '../../transport/self-signed.js';
import { resolveActivated, takeSocketActivation } from '../../transport/systemd.js';
import { SOCKIT_VERSION } from '../../version.js';
import { addBusOptions, type BusCliOptions, openBus } from '../bus-options.js';
import { type Command, Option } from '../commander.js';
import {
  action,
  DURATION_HELP,
  KEEPALIVE_COUNT_OPTION,
  KEEPALIVE_OPTION,
  keepaliveOptions,
  splitList,
} from '../common.js';
import { startServeMetrics } from '../serve-metrics.js';
import { SERVE_PLUGINS } from '../serve-plugins.js';
import { onHangup } from '../serve-reload.js';
import {
  type Balance,
  isServeWorker,
  parseBalance,
  parseWorkers,
  runPrimary,
  sendBanner,
  workerAddresses,
  workerStopSignal,
} from '../serve-workers.js';
import { untilSignal } from '../signals.js';
import { sockitCommand, tryCommands } from '../try-commands.js';

/** Services `--open` may name; exec and files are refused there with the reason (they need the token). */
const OPENABLE = ['echo', 'chat', 'exec', 'files', 'tunnel'] as const;

/** Where `sockit serve` listens with no address: loopback, a fixed port that is easy to type. */
export const DEFAULT_SERVE_ADDRESS = 'tcp://127.0.0.1:7070';

interface ServeCliOptions extends BusCliOptions {
  listen: string[];
  tokenFile?: string;
  insecureNoAuth?: boolean;
  open: string[];
  cert?: string;
  key?: string;
  stateDir?: string;
  maxConnections?: number;
  /** Milliseconds, as the next one (argParsers.duration). */
  idleTimeout?: number;
  handshakeTimeout?: number;
  maxRequests?: number;
  shutdownDeadline?: number;
  logLevel: LogLevel;
  jsonLogs?: boolean;
  metrics?: string;
  workers?: string;
  balance?: string;
  keepalive?: string;
  keepaliveCount?: string;
  [plugin: string]: unknown;
}

export function registerServe(program: Command): void {
  const command = program
    .command('serve')
    .description(`serve the framed protocol on one or more addresses (default ${DEFAULT_SERVE_ADDRESS})`)
    .argument(
      '[address...]',
      'tcp://HOST:PORT, tls://HOST:PORT, unix:/PATH, HOST:PORT, or fd:N / tls+fd:N (an inherited listening socket)',
    )
    .option(
      '--listen <address>',
      'one more address, as the arguments (repeatable); fd:NAME is the systemd socket of that FileDescriptorName',
      (text: string, list: string[]) => [...list, text],
      [] as string[],
    )
    .option('--token-file <path>', 'token file to read or create (default: <state dir>/token)')
    .option(
      '--insecure-no-auth',
      'DANGER: let anyone who connects use every service, exec and files included',
    )
    .addOption(
      new Option(
        '--open <services>',
        `comma-separated services usable without the token: ${OPENABLE.join(', ')}`,
      )
        .argParser((text: string) => parseChoiceList(text, '--open', OPENABLE))
        .default(['echo'], 'echo'),
    )
    .option('--cert <pem>', 'TLS certificate (default: a self-signed one kept in the state dir)')
    .option('--key <pem>', 'TLS private key for --cert')
    .option(
      '--state-dir <dir>',
      'where token and certificate live (default: $SOCKIT_STATE_DIR or ~/.local/state/sockit)',
    )
    .option('--max-connections <n>', 'connections open at once', argParsers.positive('--max-connections'))
    .option(
      '--idle-timeout <duration>',
      `close connections idle this long (${DURATION_HELP}; 0 = never)`,
      argParsers.duration('--idle-timeout'),
    )
    .option(
      '--handshake-timeout <duration>',
      `time from accept to finish TLS and hello/auth (${DURATION_HELP}; default 10s)`,
      argParsers.duration('--handshake-timeout'),
    )
    .option('--max-requests <n>', 'open requests per connection', argParsers.positive('--max-requests'))
    .option(
      '--shutdown-deadline <duration>',
      `on SIGINT/SIGTERM, wait this long for open requests (${DURATION_HELP})`,
      argParsers.duration('--shutdown-deadline'),
    )
    .option(
      '--log-level <level>',
      LOG_LEVELS.join(', '),
      argParsers.choice('--log-level', LOG_LEVELS),
      'info',
    )
    .option(...KEEPALIVE_OPTION)
    .option(...KEEPALIVE_COUNT_OPTION)
    .option('--json-logs', 'JSON-lines logs even on a terminal')
    .option(
      '--metrics <addr>',
      'serve /metrics (Prometheus), /healthz and /readyz on HOST:PORT (or PORT on 127.0.0.1)',
    );
  command.option(
    '--workers <n>',
    'worker processes sharing the listeners (node:cluster); auto = one per core. With --chat it needs --bus',
  );
  command.option(
    '--balance <how>',
    'how --workers share a port: cluster (default: the primary hands connections out) or reuseport (each worker binds it, SO_REUSEPORT; Node >= 22.12, fixed TCP ports)',
  );
  addBusOptions(command, 'chat rooms');
  for (const plugin of SERVE_PLUGINS) plugin.addOptions(command);
  command.action(
    action(async (addresses: string[], options: ServeCliOptions) => runServe(addresses, options)),
  );
}

async function runServe(addressArgs: string[], options: ServeCliOptions): Promise<void> {
  const log = createLogger({ level: options.logLevel, ...(options.jsonLogs ? { json: true } : {}) });
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new SockitError('USAGE', '--cert and --key go together');
  }
  if (options.bus !== undefined && !options.chat) {
    throw new SockitError('USAGE', '--bus shares chat rooms between servers: it goes with --chat');
  }
  const workers = parseWorkers(options.workers);
  const addresses = listenAddresses(addressArgs, options);
  const balance = parseBalance(
    options.balance,
    addresses.map((text) => parseListenTarget(text)),
  );
  if (workers > 1 && options.chat && options.bus === undefined) {
    throw new SockitError(
      'USAGE',
      `--workers ${workers} with --chat needs --bus: each worker is its own process, and without a bus every worker would have rooms of its own`,
    );
  }
  if (workers > 1 && !isServeWorker()) {
    await runPrimary({
      count: workers,
      log,
      metrics: options.metrics,
      addresses,
      prepare: () => prepareShared(addresses, options),
    });
    return;
  }
  const hangup = onHangup(log);
  const bus = await openBus(options, log);
  try {
    await startServing(addresses, options, log, bus, hangup, balance);
  } catch (error) {
    await bus?.close();
    throw error;
  }
}

/**
 * What to listen on: the arguments and `--listen`s, `fd:NAME` resolved under systemd socket
 * activation, every activated socket when none is named, else the default address. A
 * `--workers` worker takes its primary's list (the activation variables were its primary's).
 */
function listenAddresses(addressArgs: string[], options: ServeCliOptions): string[] {
  const fromPrimary = workerAddresses();
  if (fromPrimary) return fromPrimary;
  const given = resolveActivated([...addressArgs, ...options.listen], takeSocketActivation());
  return given.length > 0 ? given : [DEFAULT_SERVE_ADDRESS];
}

async function startServing(
  addresses: string[],
  options: ServeCliOptions,
  log: ReturnType<typeof createLogger>,
  bus: Bus | undefined,
  hangup: ReturnType<typeof onHangup>,
  balance: Balance,
): Promise<void> {
  const services = SERVE_PLUGINS.map((plugin) => plugin.create(options, log, bus)).filter(
    (service): service is Service => service !== undefined,
  );
  let server: Server | undefined;
  const metrics =
    options.metrics === undefined
      ? undefined
      : await startServeMetrics(options.metrics, services, bus, () => server, log);
  try {
    server = await serveWith(addresses, options, services, log, metrics?.observer, balance);
  } catch (error) {
    await metrics?.endpoint?.close();
    throw error;
  }
  hangup.reloadWith(server, {
    targets: addresses.map((text) => parseListenTarget(text)),
    certFiles: options.cert === undefined ? undefined : { cert: options.cert, key: options.key! },
    stateDir: options.stateDir ?? defaultStateDir(),
  });
  printBanner(server, services, options, bus, metrics?.endpoint?.url);
  handleSignals(server, log, async () => {
    await bus?.close();
    await metrics?.endpoint?.close();
  });
}

/** Makes token and certificate once, before the workers start, so that they all share them. */
function prepareShared(addresses: string[], options: ServeCliOptions): void {
  const stateDir = options.stateDir ?? defaultStateDir();
  if (!options.insecureNoAuth) loadOrCreateToken(options.tokenFile ?? tokenPath(stateDir));
  const targets = addresses.map((text) => parseListenTarget(text));
  if (options.cert === undefined) serverTls(targets, undefined, stateDir);
}

function serveWith(
  addresses: string[],
  options: ServeCliOptions,
  services: Service[],
  log: ReturnType<typeof createLogger>,
  observer: ServerObserver | undefined,
  balance: Balance,
): Promise<Server> {
  const limits = {
    maxConnections: options.maxConnections,
    idleTimeoutMs: options.idleTimeout,
    handshakeTimeoutMs: options.handshakeTimeout,
    maxOpenRequests: options.maxRequests,
    shutdownDeadlineMs: options.shutdownDeadline,
  };
  return serve({
    listen: addresses,
    services,
    openServices: options.open,
    ...(options.insecureNoAuth ? { insecureNoAuth: true } : {}),
    ...(options.tokenFile !== undefined ? { tokenFile: options.tokenFile } : {}),
    ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
    ...(options.cert !== undefined ? { tls: readCertificateFiles(options.cert, options.key!) } : {}),
    limits,
    ...keepaliveOptions(options),
    log,
    ...(observer ? { observer } : {}),
    ...(balance === 'reuseport' ? { reusePort: true } : {}),
    // A worker's terminal channel may reach another worker: its bytes stay in frames.
    ...(isServeWorker() ? { channels: false } : {}),
  });
}

/** The programs `--exec-allow` names, 'any' for `--exec`, undefined without exec. */
function execAllowOf(options: ServeCliOptions): 'any' | string[] | undefined {
  if (typeof options.execAllow === 'string') return splitList(options.execAllow);
  return options.exec === true ? 'any' : undefined;
}

function printBanner(
  server: Server,
  services: Service[],
  options: ServeCliOptions,
  bus: Bus | undefined,
  metricsUrl: string | undefined,
): void {
  const lines = [`sockit ${SOCKIT_VERSION} serving ${services.map((s) => s.name).join(', ')} on:`];
  for (const address of server.addresses) lines.push(`  ${formatAddress(address)}`);
  if (metricsUrl) lines.push(`metrics: ${metricsUrl}/metrics  (/healthz, /readyz)`);
  if (bus) lines.push(`bus: ${redactBusUrl(options.bus!)} (NATS; chat rooms shared with every server on it)`);
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
  const sockit = sockitCommand();
  const examples = tryCommands(
    {
      address: server.addresses[0]!,
      services: new Set(services.map((service) => service.name)),
      execAllow: execAllowOf(options),
    },
    sockit,
  );
  lines.push('Try:', ...examples.map((command) => `  ${command}`));
  if (sockit !== 'sockit')
    lines.push("  (npx runs this checkout's sockit; `npm link` puts `sockit` on PATH)");
  if (isServeWorker()) sendBanner(lines.join('\n'));
  else process.stdout.write(`${lines.join('\n')}\n`);
}

/** First SIGINT/SIGTERM: graceful shutdown, then `after` (bus, metrics), exit 0; a second one exits at once. */
function handleSignals(
  server: Server,
  log: ReturnType<typeof createLogger>,
  after: () => Promise<void>,
): void {
  const signal = isServeWorker() ? workerStopSignal() : untilSignal();
  signal.addEventListener('abort', () => {
    log.info('shutting down', { signal: signal.reason, connections: server.connectionCount });
    server
      .close()
      .then(after)
      .then(
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
