import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import { SockitError } from '../errors.js';
import { type RawConnection, serveRaw } from '../server/raw-server.js';
import { type Address, formatAddress } from '../transport/address.js';
import { type DialOptions, dialStream } from '../transport/dial.js';
import type { TlsServerCredentials } from '../transport/listen.js';
import { AccessList } from './cidr.js';
import { nativeForwardTarget, startNativeForward } from './forward-native.js';
import { type ProxyProtocolVersion, proxyHeader } from './forward-proxy-header.js';
import { describeResult, type RelaySink, relaySockets, type SocketRelayOptions } from './forward-relay.js';
import { DEFAULT_FORWARD_DRAIN_MS, type Forwarder } from './forwarder.js';

export type { Forwarder } from './forwarder.js';

/** What `forward` and `chaos` may put in front of each direction of one connection. */
export interface ConnectionLinks {
  upstream?: RelaySink;
  downstream?: RelaySink;
}

export interface StreamForwardOptions {
  listen: Address;
  target: Address;
  /** Clients at once; one more is closed at once (nothing written: the stream is not ours). Default 100. */
  maxConnections?: number;
  access?: AccessList | undefined;
  /** `-w`: how long the target gets to accept (and finish TLS). Default 10 s. */
  connectTimeoutMs?: number;
  /** `-i`: close a connection with no byte either way for this long. */
  idleTimeoutMs?: number | undefined;
  /** Send HAProxy's PROXY header to the target before the client's bytes. */
  proxyProtocol?: ProxyProtocolVersion | undefined;
  /** Certificate and key for a `tls://` listen address (default: the kept self-signed pair). */
  tls?: TlsServerCredentials | undefined;
  stateDir?: string | undefined;
  /** How the target is dialled: TLS trust, servername, outbound proxy. */
  dial?: Omit<DialOptions, 'timeoutMs'>;
  /** Chaos: links for one connection's two directions, made once the target answered. */
  links?: (client: Socket, target: Socket) => ConnectionLinks;
  /** One line per connection and per refusal (default: `sockit: …` on stderr). */
  say?: (line: string) => void;
  /**
   * False (`-q`): no line per connection, its failures included, and none is even formatted;
   * refusals are still said. Default true.
   */
  connectionLines?: boolean;
  /**
   * Plain TCP to a plain TCP or unix target runs in the native engine (`native/forward.c`) where
   * it is built; false keeps it on Node's sockets (tests compare both). Default true.
   */
  nativeEngine?: boolean;
}

/** Ncat's default for `--max-conns`, the same as `listen`. */
export const DEFAULT_FORWARD_MAX_CONNECTIONS = 100;

const stderrSay = (line: string): void => {
  process.stderr.write(`sockit: ${line}\n`);
};

/**
 * `sockit forward LISTEN TARGET` for stream addresses (tcp, tls, unix on either side): every
 * client gets a fresh connection to the target, and the two are joined by `relaySockets`
 * (half-close and backpressure both ways), or, from a plain TCP listener to a plain target by
 * IP or unix path, by the native engine (`startNativeForward`), with the same behaviour. A target that refuses or does not answer in time
 * closes that client with a log line; the forwarder keeps serving.
 */
export async function startStreamForward(options: StreamForwardOptions): Promise<Forwarder> {
  const say = options.say ?? stderrSay;
  const access = options.access ?? new AccessList([], []);
  if (access.active && options.listen.kind === 'unix') {
    throw new SockitError(
      'USAGE',
      '--allow/--deny match IP addresses; a unix: socket has none (use file permissions)',
    );
  }
  if (options.target.kind === 'udp') {
    throw new SockitError('USAGE', 'a stream listener forwards to a stream target (tcp, tls, unix), not udp');
  }
  const target = formatAddress(options.target);
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const sayConnection = options.connectionLines === false ? undefined : say;
  const sayDenied = (peer: string): void => say(`refused ${peer}: not allowed by --allow/--deny`);
  const maxConnections = options.maxConnections ?? DEFAULT_FORWARD_MAX_CONNECTIONS;
  const engineTarget =
    options.listen.kind === 'tcp' && options.links === undefined && options.nativeEngine !== false
      ? nativeForwardTarget(options.target, options.dial)
      : undefined;
  if (engineTarget !== undefined) {
    return startNativeForward(
      {
        listen: options.listen,
        target: options.target,
        maxConnections,
        access,
        connectTimeoutMs,
        idleTimeoutMs: options.idleTimeoutMs,
        proxyProtocol: options.proxyProtocol,
        sayDenied,
        sayConnection,
      },
      engineTarget,
    );
  }
  // Built once: every connection dials the same way (a spread per connection showed in profiles).
  const dial: DialOptions = { ...options.dial, timeoutMs: connectTimeoutMs };
  // Aborted at close()'s deadline: a connection cut then says so in its line, as the engine's do.
  const deadline = new AbortController();
  // One listener per open relay, each removed when it ends: as many as --max-conns, not a leak.
  setMaxListeners(0, deadline.signal);
  // The relay options of a connection with no chaos links and no idle timeout: one shared object.
  const plainRelay: SocketRelayOptions = { signal: deadline.signal };
  const server = await serveRaw({
    listen: options.listen,
    maxConnections,
    // A forwarder is transparent: an extra client is closed without a word in its stream.
    refusal: () => '',
    tls: options.tls,
    stateDir: options.stateDir,
    admit: ({ remoteAddress }) => access.admits(remoteAddress),
    shutdownDeadlineMs: DEFAULT_FORWARD_DRAIN_MS,
    handle: (connection) => forwardOne(connection, options, dial, plainRelay, target, sayConnection),
  });
  server.on('denied', sayDenied);
  return {
    addresses: server.addresses,
    tlsFingerprint: server.tlsFingerprint,
    engine: 'node',
    get connectionCount() {
      return server.connectionCount;
    },
    close(deadlineMs = DEFAULT_FORWARD_DRAIN_MS) {
      const timer = setTimeout(() => deadline.abort(), deadlineMs);
      return server.close(deadlineMs).finally(() => clearTimeout(timer));
    },
  };
}

/** One client: dial the target, relay until both sides closed, one line (unless `say` is undefined). */
async function forwardOne(
  connection: RawConnection,
  options: StreamForwardOptions,
  dial: DialOptions,
  plainRelay: SocketRelayOptions,
  target: string,
  say: ((line: string) => void) | undefined,
): Promise<void> {
  const client = connection.socket;
  let upstream: Socket;
  try {
    upstream = await dialStream(options.target, dial);
  } catch (error) {
    const reason = error instanceof SockitError ? `${error.code}: ${error.message}` : String(error);
    say?.(`${connection.peer} → ${target}: ${reason}; closed the client`);
    client.destroy();
    return;
  }
  if (client.destroyed) {
    say?.(`${connection.peer} → ${target}: the client left before the target answered`);
    upstream.destroy();
    return;
  }
  if (options.proxyProtocol) upstream.write(proxyHeader(options.proxyProtocol, client));
  const links = options.links?.(client, upstream);
  const result = await relaySockets(
    client,
    upstream,
    links === undefined && options.idleTimeoutMs === undefined
      ? plainRelay
      : {
          ...plainRelay,
          idleTimeoutMs: options.idleTimeoutMs,
          upstream: links?.upstream,
          downstream: links?.downstream,
        },
  );
  say?.(`${connection.peer} → ${target}: ${describeResult(result)}`);
}
