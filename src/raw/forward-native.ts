import { isIP } from 'node:net';
import { fromSystemError, SockitError } from '../errors.js';
import { loadNative } from '../native.js';
import { type Address, formatAddress } from '../transport/address.js';
import { type DialOptions, dialTimeout } from '../transport/dial.js';
import { listenStream } from '../transport/listen.js';
import type { AccessList } from './cidr.js';
import { type ProxyProtocolVersion, proxyHeader } from './forward-proxy-header.js';
import { describeResult, type RelayEnd } from './forward-relay.js';
import { DEFAULT_FORWARD_DRAIN_MS, type Forwarder } from './forwarder.js';
import { RELAY_BULK_BYTES } from './relay-buffers.js';

/** How a connection of the engine ended: a relay's ends, or `connect` (the target did not answer). */
type EngineEnd = RelayEnd | 'connect';

/** The target as the engine takes it: [4 | 6, ip, port] or [0, unix path]. */
type EngineTarget = [family: 4 | 6, ip: string, port: number] | [family: 0, path: string];

/** At accept (with an allow-list or a PROXY header): false refuses, a Buffer goes to the target first. */
type EngineOnAccept = (
  peer: string,
  peerIp: string | undefined,
  peerPort: number,
  localIp: string | undefined,
  localPort: number,
) => boolean | Buffer;

/** Once per connection at its end: `active` is how many are left. */
type EngineOnClose = (
  peer: string,
  up: number,
  down: number,
  ms: number,
  end: EngineEnd,
  error: string | null,
  active: number,
) => void;

interface ForwardAddon {
  create(
    listenFd: number,
    target: EngineTarget,
    options: [maxConnections: number, connectTimeoutMs: number, idleTimeoutMs: number, bulkBytes: number],
    onAccept: EngineOnAccept | null,
    onClose: EngineOnClose,
  ): object;
  count(engine: object): number;
  stopAccepting(engine: object): void;
  abortAll(engine: object): void;
}

/** Without the addon every forward runs on Node's sockets. */
const forwardAddon = (): ForwardAddon | null => loadNative<ForwardAddon>('sockit_forward');

/** What the native engine needs besides `startStreamForward`'s options. */
export interface NativeForwardOptions {
  listen: Address;
  target: Address;
  maxConnections: number;
  access: AccessList;
  connectTimeoutMs: number;
  idleTimeoutMs: number | undefined;
  proxyProtocol: ProxyProtocolVersion | undefined;
  /** Says that `--allow/--deny` turned a peer away (the same line as on Node's sockets). */
  sayDenied: (peer: string) => void;
  /** Undefined (`-q`): no line per connection. */
  sayConnection: ((line: string) => void) | undefined;
}

/**
 * The target as the engine can dial it, or undefined where only Node can: a host name (resolved
 * per connection, as a fresh lookup should be), TLS, an outbound proxy, no addon here.
 */
export function nativeForwardTarget(
  target: Address,
  dial: DialOptions | undefined,
): EngineTarget | undefined {
  if (forwardAddon() === null || dial?.proxy) return undefined;
  if (target.kind === 'unix') return [0, target.path];
  if (target.kind !== 'tcp') return undefined;
  // A scoped IPv6 address (fe80::1%eth0) needs the zone resolved: Node does that.
  if (target.host.includes('%')) return undefined;
  const family = isIP(target.host);
  return family === 4 || family === 6 ? [family, target.host, target.port] : undefined;
}

/**
 * `sockit forward` from a plain TCP listener to a plain stream target, run by the native engine
 * (`native/forward.c`): Node binds the listener (its errors, port 0, dual-stack `[::]`), the
 * engine takes a duplicate of the socket and Node's own is closed before it ever accepts. Each
 * connection then lives in C; JavaScript sees it only for `--allow/--deny` and the PROXY header
 * at accept, and for its log line at the end. Same behaviour and lines as the Node relay.
 */
export async function startNativeForward(
  options: NativeForwardOptions,
  target: EngineTarget,
): Promise<Forwarder> {
  const native = forwardAddon();
  if (native === null) throw new SockitError('INTERNAL', 'the native forward engine is not built');
  // Nothing can be accepted by Node: its listener is closed on the turn it starts listening.
  const listener = await listenStream(options.listen, (socket) => socket.destroy(), { backlog: 511 });
  const targetText = formatAddress(options.target);
  const { sayDenied, sayConnection, access, proxyProtocol } = options;
  let drained: (() => void) | undefined;
  const onAccept: EngineOnAccept | null =
    access.active || proxyProtocol !== undefined
      ? (peer, peerIp, peerPort, localIp, localPort) => {
          if (!access.admits(peerIp)) {
            sayDenied(peer);
            return false;
          }
          if (proxyProtocol === undefined) return true;
          return proxyHeader(proxyProtocol, {
            remoteAddress: peerIp,
            remotePort: peerPort,
            localAddress: localIp,
            localPort,
          });
        }
      : null;
  const onClose: EngineOnClose = (peer, up, down, ms, end, error, active) => {
    if (sayConnection !== undefined) {
      sayConnection(
        end === 'connect'
          ? `${peer} → ${targetText}: ${connectFailure(targetText, error, options.connectTimeoutMs)}; closed the client`
          : `${peer} → ${targetText}: ${describeResult({
              up,
              down,
              ms,
              end,
              error: error === null ? undefined : new Error(error),
            })}`,
      );
    }
    if (active === 0) drained?.();
  };
  let engine: object;
  try {
    const fd = (listener.server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new SockitError('INTERNAL', 'the listener has no descriptor');
    engine = native.create(
      fd,
      target,
      [options.maxConnections, options.connectTimeoutMs, options.idleTimeoutMs ?? 0, RELAY_BULK_BYTES],
      onAccept,
      onClose,
    );
  } finally {
    await listener.close();
  }
  let closed: Promise<void> | undefined;
  return {
    addresses: [listener.address],
    tlsFingerprint: undefined,
    engine: 'native',
    get connectionCount() {
      return native.count(engine);
    },
    close(deadlineMs = DEFAULT_FORWARD_DRAIN_MS) {
      closed ??= new Promise<void>((resolve) => {
        native.stopAccepting(engine);
        if (native.count(engine) === 0) {
          resolve();
          return;
        }
        const timer = setTimeout(() => native.abortAll(engine), deadlineMs);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      return closed;
    },
  };
}

/** The line of a target that refused or did not answer, worded as `dialStream` words it. */
function connectFailure(target: string, error: string | null, timeoutMs: number): string {
  const what = `cannot connect to ${target}`;
  const failure =
    error === 'ETIMEDOUT'
      ? dialTimeout(what, timeoutMs)
      : fromSystemError(Object.assign(new Error(error ?? 'EIO'), { code: error ?? 'EIO' }), what);
  return `${failure.code}: ${failure.message}`;
}
