import type { Command } from 'commander';
import { SockitError } from '../errors.js';
import { parseDuration, parsePositiveInteger } from '../options.js';
import type { ConnectionLinks, Forwarder } from '../raw/forward.js';
import type { DatagramGate } from '../raw/forward-udp.js';
import { type Address, formatAddress, parseAddress } from '../transport/address.js';
import { clientOptions, collect } from './common.js';
import { untilSignal } from './signals.js';

/** The options `forward` and `chaos` share (chaos is a forward that misbehaves). */
export interface ForwardCliOptions {
  maxConns?: string;
  allow?: string[];
  deny?: string[];
  wait?: string;
  idleTimeout?: string;
  proxyProtocol?: string;
  proxy?: string;
  drain?: string;
  cert?: string;
  key?: string;
  stateDir?: string;
  fingerprint?: string;
  ca?: string;
  knownHosts?: string;
  servername?: string;
  quiet?: boolean;
}

/** Adds the forwarding options to `forward` or `chaos`. */
export function addForwardOptions(command: Command): Command {
  return command
    .argument(
      '<listen>',
      'where clients connect: tcp://HOST:PORT, tls://…, unix:/PATH, udp://…, HOST:PORT, PORT',
    )
    .argument('<target>', 'where each client is relayed: tcp://HOST:PORT, tls://…, unix:/PATH, udp://…')
    .option('-m, --max-conns <n>', 'clients at once (UDP: client peers); extras are closed', '100')
    .option('--allow <cidrs>', 'only these IPs/CIDR blocks may connect (comma list, repeatable)', collect)
    .option('--deny <cidrs>', 'these IPs/CIDR blocks may not connect (comma list, repeatable)', collect)
    .option('-w, --wait <time>', 'how long the target gets to accept a connection (5 = seconds, 500ms)', '10')
    .option(
      '-i, --idle-timeout <time>',
      'close a connection with no traffic either way for this long (UDP default 60s)',
    )
    .option('--proxy-protocol <v1|v2>', "send HAProxy's PROXY header to the target (the real client address)")
    .option('--proxy <url>', 'reach the target through socks5://HOST:PORT or http://HOST:PORT (CONNECT)')
    .option(
      '--drain <time>',
      'on SIGTERM/SIGINT: how long open connections may go on before they are cut',
      '10',
    )
    .option('--cert <pem>', 'tls:// listen: certificate (default: the self-signed one in the state dir)')
    .option('--key <pem>', 'tls:// listen: private key for --cert')
    .option('--fingerprint <sha256>', 'tls:// target: trust only a certificate with this SHA-256 fingerprint')
    .option('--ca <pem-file>', 'tls:// target: verify against this CA instead of pinning')
    .option('--servername <name>', 'tls:// target: the name sent in SNI and checked with --ca')
    .option(
      '--known-hosts <file>',
      'tls:// target: pinned fingerprints file (default: <state dir>/known_hosts)',
    )
    .option('--state-dir <dir>', 'certificate and pins (default: $SOCKIT_STATE_DIR)')
    .option('-q, --quiet', 'no line per connection');
}

/** What the chaos command adds to a plain forward. */
export interface ForwardExtras {
  links?: (client: import('node:net').Socket, target: import('node:net').Socket) => ConnectionLinks;
  gate?: DatagramGate;
  /** Called once listening, before the command waits for a signal (chaos starts its control API). */
  started?: (forwarder: Forwarder) => Promise<{ close(): Promise<void> } | undefined>;
}

/** Parses the two addresses; both UDP or both streams. */
export function forwardAddresses(
  listenText: string,
  targetText: string,
): { listen: Address; target: Address } {
  const listen = parseAddress(listenText);
  const target = parseAddress(targetText);
  if ((listen.kind === 'udp') !== (target.kind === 'udp')) {
    throw new SockitError(
      'USAGE',
      `${formatAddress(listen)} → ${formatAddress(target)}: UDP forwards to UDP, streams to streams`,
    );
  }
  return { listen, target };
}

/** Starts the forwarder the options describe, prints where it listens, and runs until a signal. */
export async function runForwardCommand(
  listenText: string,
  targetText: string,
  options: ForwardCliOptions,
  extras: ForwardExtras = {},
): Promise<void> {
  const { listen, target } = forwardAddresses(listenText, targetText);
  const [{ AccessList }, { readCertificateFiles }] = await Promise.all([
    import('../raw/cidr.js'),
    import('../transport/self-signed.js'),
  ]);
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new SockitError('USAGE', '--cert and --key go together');
  }
  const proxyProtocol = options.proxyProtocol;
  if (proxyProtocol !== undefined && proxyProtocol !== 'v1' && proxyProtocol !== 'v2') {
    throw new SockitError('USAGE', `--proxy-protocol takes v1 or v2, got "${proxyProtocol}"`);
  }
  const maxConnections =
    options.maxConns === undefined ? 100 : parsePositiveInteger(options.maxConns, '--max-conns');
  const access = AccessList.fromOptions(options.allow ?? [], options.deny ?? []);
  const idleTimeoutMs =
    options.idleTimeout === undefined ? undefined : parseDuration(options.idleTimeout, '-i');
  const drainMs = parseDuration(options.drain ?? '10', '--drain');
  const say = options.quiet
    ? (line: string) => {
        if (!/ → /.test(line)) process.stderr.write(`sockit: ${line}\n`);
      }
    : undefined;
  const signal = untilSignal();
  let forwarder: Forwarder;
  if (listen.kind === 'udp') {
    if (proxyProtocol || options.proxy) {
      throw new SockitError('USAGE', '--proxy-protocol and --proxy carry streams, not UDP');
    }
    const { startUdpForward } = await import('../raw/forward-udp.js');
    forwarder = await startUdpForward({
      listen,
      target,
      maxConnections,
      access,
      idleTimeoutMs,
      ...(extras.gate ? { gate: extras.gate } : {}),
      ...(say ? { say } : {}),
    });
  } else {
    const [{ startStreamForward }, { parseProxy }] = await Promise.all([
      import('../raw/forward.js'),
      import('../transport/proxy.js'),
    ]);
    const trust = target.kind === 'tls' ? await clientOptions(options) : undefined;
    forwarder = await startStreamForward({
      listen,
      target,
      maxConnections,
      access,
      connectTimeoutMs: parseDuration(options.wait ?? '10', '-w'),
      idleTimeoutMs,
      proxyProtocol,
      tls: options.cert === undefined ? undefined : readCertificateFiles(options.cert, options.key!),
      stateDir: options.stateDir,
      dial: {
        ...(trust?.tls
          ? { tls: { ...trust.tls, ...(options.servername ? { servername: options.servername } : {}) } }
          : {}),
        ...(trust?.onTlsPin ? { onTlsPin: trust.onTlsPin } : {}),
        ...(options.proxy ? { proxy: parseProxy(options.proxy) } : {}),
      },
      ...(extras.links ? { links: extras.links } : {}),
      ...(say ? { say, connectionLines: false } : {}),
    });
  }
  let extra: { close(): Promise<void> } | undefined;
  try {
    extra = await extras.started?.(forwarder);
  } catch (error) {
    await forwarder.close(0);
    throw error;
  }
  if (forwarder.tlsFingerprint)
    process.stderr.write(`sockit: TLS fingerprint (SHA-256): ${forwarder.tlsFingerprint}\n`);
  process.stderr.write(
    `sockit: listening on ${forwarder.addresses.map(formatAddress).join(', ')}, forwarding to ${formatAddress(target)}\n`,
  );
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
  process.stderr.write(
    `sockit: ${String(signal.reason)}: draining ${forwarder.connectionCount} connection(s)\n`,
  );
  await extra?.close();
  await forwarder.close(drainMs);
  process.exit(0);
}
