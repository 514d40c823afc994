import { SockitError } from '../errors.js';
import { type Address, formatAddress, formatHostPort } from '../transport/address.js';
import type { RetryInfo } from '../transport/backoff.js';
import { type DialOptions, dialStream, type TlsTrust } from '../transport/dial.js';
import { bridgeToProcess, describeExec, type ExecSpec } from './exec-bridge.js';
import { inputStream } from './lines.js';
import { relayReconnecting } from './reconnecting-relay.js';
import { scanPorts } from './scan.js';
import { SessionLog, sessionTaps } from './session-log.js';
import { standardInput } from './stdio.js';
import { relayStdio } from './stdio-relay.js';
import { udpSession } from './udp-connect.js';

export interface ConnectRawOptions {
  address: Address;
  /** Connect the socket to this process instead of stdin/stdout. */
  exec?: ExecSpec | undefined;
  /** Input EOF shuts down our write side. Default true. */
  shutdown?: boolean;
  sendOnly?: boolean;
  recvOnly?: boolean;
  /** `-w`: give up connecting after this long. Default 10 s. */
  connectTimeoutMs?: number | undefined;
  /** `-i`: close after this long without traffic. */
  idleTimeoutMs?: number | undefined;
  hex?: boolean;
  logFile?: string | undefined;
  verbose?: boolean;
  tls?: TlsTrust;
  onTlsPin?: DialOptions['onTlsPin'];
  /** `--proxy`: reach the address through a SOCKS5 or HTTP CONNECT proxy. */
  proxy?: DialOptions['proxy'];
  say?: (line: string) => void;
  /** `--reconnect`: replace a dropped connection (stdin/stdout sessions only); see reconnecting-relay.ts. */
  reconnect?: { maxAttempts?: number | undefined; onRetry: (info: RetryInfo) => void } | undefined;
}

const stderrSay = (line: string): void => {
  process.stderr.write(`sockit: ${line}\n`);
};

/**
 * `sockit connect`: one connection joined to stdin/stdout (or a process), with the relay's
 * half-close rules; UDP addresses send each input line as a datagram.
 * Resolves with the error that should set the exit code, or undefined.
 */
export async function runConnect(options: ConnectRawOptions): Promise<SockitError | undefined> {
  const say = options.say ?? stderrSay;
  const notice = options.verbose ? say : undefined;
  if (options.sendOnly && options.recvOnly) {
    throw new SockitError('USAGE', '--send-only and --recv-only exclude each other');
  }
  const log = options.logFile ? new SessionLog(options.logFile) : undefined;
  const taps = sessionTaps({ hex: options.hex ?? false, log });
  try {
    if (options.address.kind === 'udp') {
      if (options.exec) throw new SockitError('USAGE', '--exec needs a stream; UDP carries single datagrams');
      if (options.reconnect)
        throw new SockitError('USAGE', '--reconnect needs a stream; UDP has no connection to lose');
      const result = await udpSession({
        address: options.address,
        input: inputStream(standardInput()),
        output: process.stdout,
        idleTimeoutMs: options.idleTimeoutMs,
        taps,
      });
      notice?.(`sent ${result.sent} bytes, received ${result.received} bytes`);
      return result.error;
    }
    const address = options.address;
    const dial = () =>
      dialStream(address, {
        timeoutMs: options.connectTimeoutMs ?? 10_000,
        ...(options.tls ? { tls: options.tls } : {}),
        ...(options.onTlsPin ? { onTlsPin: options.onTlsPin } : {}),
        ...(options.proxy ? { proxy: options.proxy } : {}),
      });
    if (options.reconnect) {
      if (options.exec)
        throw new SockitError('USAGE', '--reconnect relays stdin/stdout; it does not combine with --exec');
      if (options.idleTimeoutMs !== undefined)
        throw new SockitError(
          'USAGE',
          '--idle-timeout ends the session; it does not combine with --reconnect',
        );
      const result = await relayReconnecting({
        dial,
        input: options.recvOnly ? undefined : inputStream(standardInput()),
        output: options.sendOnly ? undefined : process.stdout,
        shutdown: options.shutdown ?? true,
        maxAttempts: options.reconnect.maxAttempts,
        taps,
        say,
        onRetry: options.reconnect.onRetry,
      });
      notice?.(
        `closed: ${result.connections} connections, sent ${result.sent} bytes, received ${result.received} bytes`,
      );
      return result.error;
    }
    const socket = await dial();
    notice?.(`connected to ${formatAddress(options.address)}`);
    if (options.exec) {
      notice?.(`running ${describeExec(options.exec)}`);
      const result = await bridgeToProcess(socket, options.exec, taps);
      return result.error;
    }
    const result = await relayStdio(socket, options, taps);
    notice?.(`closed: sent ${result.sent} bytes, received ${result.received} bytes`);
    return result.error;
  } finally {
    log?.close();
  }
}

/**
 * `sockit connect -z HOST:PORTS`: prints `host:port open` on stdout for every port that accepts
 * a connection (and the closed ones on stderr with `-v`). Resolves true when any port is open.
 */
export async function runScan(
  host: string,
  ports: readonly number[],
  options: {
    timeoutMs?: number | undefined;
    verbose?: boolean;
    json?: boolean;
    say?: (line: string) => void;
  } = {},
): Promise<boolean> {
  const say = options.say ?? stderrSay;
  const results = await scanPorts(
    host,
    ports,
    options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {},
  );
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ host, results })}\n`);
  } else {
    for (const result of results) {
      if (result.open) process.stdout.write(`${formatHostPort(host, result.port)} open\n`);
      else if (options.verbose) say(`${formatHostPort(host, result.port)} closed (${result.reason})`);
    }
  }
  return results.some((result) => result.open);
}
