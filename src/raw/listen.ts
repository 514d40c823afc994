import type { Bus } from '../bus/bus.js';
import { SockitError } from '../errors.js';
import type { EchoTransform } from '../protocol/transform.js';
import { type RawConnection, type RawHandler, type RawServer, serveRaw } from '../server/raw-server.js';
import { type Address, formatAddress, isLoopback } from '../transport/address.js';
import type { TlsServerCredentials } from '../transport/listen.js';
import { createBroker } from './broker.js';
import { AccessList } from './cidr.js';
import { rawEchoHandler } from './echo.js';
import { bridgeToProcess, describeExec, type ExecSpec } from './exec-bridge.js';
import { createLineChat } from './line-chat.js';
import { inputStream } from './lines.js';
import { SessionLog, sessionTaps, type TapOptions } from './session-log.js';
import { SharedInput } from './shared-input.js';
import { standardInput } from './stdio.js';
import { relayStdio } from './stdio-relay.js';
import { type TutorialExecOptions, tutorialExecHandler } from './tutorial-exec.js';
import { tutorialUploadHandler } from './tutorial-upload.js';
import { serveUdp } from './udp-listen.js';

/** What a listener does with each client. */
export type ListenMode =
  | { kind: 'relay' }
  | { kind: 'echo'; transform: EchoTransform; greeting?: string | undefined }
  | { kind: 'exec'; spec: ExecSpec }
  | { kind: 'broker' }
  | { kind: 'chat' }
  | { kind: 'tutorial-exec'; plan: TutorialExecOptions['plan'] }
  | { kind: 'tutorial-upload'; directory: string };

export interface ListenOptions {
  address: Address;
  mode: ListenMode;
  /** Share `--broker`/`--chat` with the other servers on this bus (the caller closes it). */
  bus?: Bus | undefined;
  /** Serve clients one after another and at once, until stopped. Every mode but relay and exec always does. */
  keepOpen?: boolean;
  /** Clients at once with `keepOpen`. Default 100 (as Ncat). */
  maxConnections?: number;
  access?: AccessList | undefined;
  /** Input EOF shuts down our write side. Default true. */
  shutdown?: boolean;
  sendOnly?: boolean;
  recvOnly?: boolean;
  idleTimeoutMs?: number | undefined;
  hex?: boolean;
  /** `-o FILE`: log every byte of every session. */
  logFile?: string | undefined;
  verbose?: boolean;
  tls?: TlsServerCredentials | undefined;
  stateDir?: string | undefined;
  /** Prints one line for the user (default: `sockit: …` on stderr). */
  say?: (line: string) => void;
  /** Stops a listener that runs until told (the CLI aborts it on SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Told the bound address once listening (tests, and `listen` on port 0). */
  onListening?: (address: Address) => void;
}

/** Ncat's default for `--max-conns`. */
export const DEFAULT_MAX_CONNECTIONS = 100;

const stderrSay = (line: string): void => {
  process.stderr.write(`sockit: ${line}\n`);
};

/**
 * `sockit listen`: accepts clients on one address and connects them to stdin/stdout, a fresh
 * process, the echo server, a broker or a line chat. Without `keepOpen` it serves one client
 * and resolves when that session ends; otherwise it runs until `signal` aborts.
 * Resolves with the error that should set the exit code, or undefined.
 */
export async function runListen(options: ListenOptions): Promise<SockitError | undefined> {
  const say = options.say ?? stderrSay;
  const notice = options.verbose ? say : undefined;
  const access = options.access ?? new AccessList([], []);
  const log = options.logFile ? new SessionLog(options.logFile) : undefined;
  const tapOptions: TapOptions = { hex: options.hex ?? false, log };
  const { mode } = options;
  const alwaysOpen = mode.kind !== 'relay' && mode.kind !== 'exec';
  const multi = alwaysOpen || (options.keepOpen ?? false);
  if (options.sendOnly && options.recvOnly) {
    throw new SockitError('USAGE', '--send-only and --recv-only exclude each other');
  }
  try {
    if (options.address.kind === 'udp') return await listenUdpMode(options, say, notice, access, tapOptions);
    if (access.active && options.address.kind === 'unix') {
      throw new SockitError(
        'USAGE',
        '--allow/--deny match IP addresses; a unix: socket has none (use file permissions)',
      );
    }
    warnAboutExposure(options, say);

    let sessionDone!: (error: SockitError | undefined) => void;
    const finished = new Promise<SockitError | undefined>((resolve) => {
      sessionDone = resolve;
    });
    const handler = buildHandler(options, multi, tapOptions, notice, say, sessionDone);
    const maxConnections = multi ? (options.maxConnections ?? DEFAULT_MAX_CONNECTIONS) : 1;
    const server: RawServer = await serveRaw({
      listen: options.address,
      ...handler,
      maxConnections,
      idleTimeoutMs: multi ? (options.idleTimeoutMs ?? 0) : 0,
      shutdownDeadlineMs: 1000,
      tls: options.tls,
      stateDir: options.stateDir,
      admit: ({ remoteAddress }) => access.admits(remoteAddress),
      refusal: (limit) =>
        multi
          ? `sockit: connection refused: this listener takes at most ${limit} client${limit === 1 ? '' : 's'} at once (--max-conns); try again later\n`
          : 'sockit: connection refused: this listener serves one client and is busy (the listener needs --keep-open for more)\n',
    });
    server.on('connection', (connection: RawConnection) => notice?.(`connection from ${connection.peer}`));
    server.on('disconnect', (connection: RawConnection) => notice?.(`${connection.peer} disconnected`));
    server.on('denied', (peer: string) => notice?.(`refused ${peer}: not allowed by --allow/--deny`));
    server.on('refused', (peer: string) =>
      notice?.(
        `refused ${peer}: ${multi ? `already ${maxConnections} clients (--max-conns)` : 'busy with one client (use --keep-open for more)'}`,
      ),
    );
    // The fingerprint comes first: whoever waits for "listening on" has it by then.
    if (server.tlsFingerprint) say(`TLS fingerprint (SHA-256): ${server.tlsFingerprint}`);
    say(`listening on ${server.addresses.map(formatAddress).join(', ')}`);
    options.onListening?.(server.addresses[0]!);

    options.signal?.addEventListener('abort', () => sessionDone(undefined), { once: true });
    const error = await finished;
    await server.close(1000);
    (handler as { close?: () => void }).close?.();
    return error;
  } finally {
    log?.close();
  }
}

function warnAboutExposure(options: ListenOptions, say: (line: string) => void): void {
  if (options.mode.kind !== 'exec') return;
  if (isLoopback(options.address) || options.address.kind === 'tls') return;
  say(
    `WARNING: ${describeExec(options.mode.spec)} runs for anyone who reaches ${formatAddress(options.address)}, ` +
      'and the traffic is readable on the network: listen on tls:// and restrict clients with --allow',
  );
}

function buildHandler(
  options: ListenOptions,
  multi: boolean,
  tapOptions: TapOptions,
  notice: ((line: string) => void) | undefined,
  say: (line: string) => void,
  sessionDone: (error: SockitError | undefined) => void,
): RawHandler {
  const { mode } = options;
  const tapsFor = (peer: string) => sessionTaps(tapOptions, multi ? peer : '');
  switch (mode.kind) {
    case 'echo':
      return rawEchoHandler({ transform: mode.transform, greeting: mode.greeting, taps: tapsFor });
    case 'broker':
      return createBroker({ notice, taps: tapsFor, ...(options.bus ? { bus: options.bus } : {}) });
    case 'chat':
      return createLineChat({ notice, ...(options.bus ? { bus: options.bus } : {}) });
    case 'tutorial-exec':
      return tutorialExecHandler({ plan: mode.plan, notice, taps: tapsFor });
    case 'tutorial-upload':
      return tutorialUploadHandler({ directory: mode.directory, notice, taps: tapsFor });
    case 'exec':
      return {
        async handle(connection) {
          notice?.(`running ${describeExec(mode.spec)} for ${connection.peer}`);
          const result = await bridgeToProcess(connection.socket, mode.spec, tapsFor(connection.peer));
          if (result.error) say(result.error.message);
          else
            notice?.(
              `${describeExec(mode.spec)} for ${connection.peer} exited (${result.signal ?? result.code})`,
            );
          if (!multi) sessionDone(result.error);
        },
      };
    case 'relay':
      return multi
        ? sharedRelayHandler(options, tapsFor)
        : singleRelayHandler(options, tapOptions, notice, sessionDone);
  }
}

/** One client, joined to stdin/stdout with the relay's half-close rules; its end is the command's end. */
function singleRelayHandler(
  options: ListenOptions,
  tapOptions: TapOptions,
  notice: ((line: string) => void) | undefined,
  sessionDone: (error: SockitError | undefined) => void,
): RawHandler {
  return {
    async handle(connection) {
      const result = await relayStdio(connection.socket, options, sessionTaps(tapOptions));
      notice?.(`${connection.peer} done: received ${result.received} bytes, sent ${result.sent} bytes`);
      sessionDone(result.error);
    },
  };
}

/** `--keep-open`: every client's bytes to stdout, stdin to every client; a client's EOF ends its session. */
function sharedRelayHandler(
  options: ListenOptions,
  tapsFor: (peer: string) => ReturnType<typeof sessionTaps>,
): RawHandler {
  const shared = options.recvOnly
    ? undefined
    : new SharedInput(inputStream(standardInput()), { shutdown: options.shutdown ?? true });
  return {
    handle(connection) {
      const { socket } = connection;
      const taps = tapsFor(connection.peer);
      return new Promise<void>((resolve) => {
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => {
          taps?.received?.(chunk);
          if (!options.sendOnly && !process.stdout.write(chunk)) {
            socket.pause();
            process.stdout.once('drain', () => socket.resume());
          }
        });
        shared?.attach(socket, taps);
        socket.once('end', () => resolve());
        socket.once('close', () => {
          shared?.detach(socket);
          resolve();
        });
      });
    },
  };
}

async function listenUdpMode(
  options: ListenOptions,
  say: (line: string) => void,
  notice: ((line: string) => void) | undefined,
  access: AccessList,
  tapOptions: TapOptions,
): Promise<SockitError | undefined> {
  const { mode } = options;
  if (mode.kind !== 'relay' && mode.kind !== 'echo') {
    throw new SockitError('USAGE', `--${mode.kind} needs a stream; UDP carries single datagrams`);
  }
  const server = await serveUdp({
    address: options.address,
    echo: mode.kind === 'echo' ? mode.transform : undefined,
    access,
    output: options.sendOnly ? undefined : process.stdout,
    input: mode.kind === 'relay' && !options.recvOnly ? inputStream(standardInput()) : undefined,
    taps: tapOptions.hex || tapOptions.log ? (peer) => sessionTaps(tapOptions, peer) : undefined,
    notice: notice ?? (() => {}),
  });
  say(`listening on ${formatAddress(server.address)}`);
  options.onListening?.(server.address);
  await new Promise<void>((resolve) => {
    if (options.signal?.aborted) return resolve();
    options.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  return undefined;
}
