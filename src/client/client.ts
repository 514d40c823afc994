import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { cancelled, SockitError } from '../errors.js';
import { computeProof, PROTOCOL_VERSION } from '../protocol/auth.js';
import { CATALOGUE, type HeaderOfType } from '../protocol/catalogue.js';
import { CHANNEL_JOIN_WAIT_MS } from '../protocol/exec.js';
import { DEFAULT_MAX_BODY_BYTES, errorFromHeader, type Frame, type FrameHeader } from '../protocol/frame.js';
import type { ChannelKind } from '../protocol/session.js';
import { defaultStateDir, readTokenFile, tokenPath } from '../state.js';
import { type Address, formatAddress, parseAddress } from '../transport/address.js';
import { type DialOptions, dialStream, type TlsTrust } from '../transport/dial.js';
import { FramedSocket } from '../transport/framed-socket.js';
import { resolveKeepalive } from '../transport/keepalive.js';
import { sealedChannelsAvailable } from '../transport/sealed-channel.js';
import { SOCKIT_AGENT } from '../version.js';
import { type JoinedChannel, joinChannel } from './channel.js';
import type { ChatRoom, JoinChatOptions } from './chat.js';
import {
  type ExecCommand,
  type ExecOptions,
  type ExecResult,
  type RemoteProcess,
  runExec,
  type SpawnRemoteOptions,
  spawnRemote,
} from './exec.js';
import type { FileEntry, ListOptions, StatOptions, TransferOptions, TransferResult } from './files.js';
import { startClientKeepalive } from './keepalive.js';

/** How an operator starts each service. */
const START_HINTS: Record<string, string> = {
  exec: 'sockit serve --exec-allow PROGRAMS',
  files: 'sockit serve --files DIR',
  chat: 'sockit serve --chat',
  echo: 'sockit serve',
  tunnel: 'sockit serve --tunnel-allow LIST',
};

/** The files and chat clients load on first use: a CLI run of `exec` or `ping` never pays for them. */
const filesClient = () => import('./files.js');
const chatClient = () => import('./chat.js');

import { ClientRequest, type RequestOptions } from './request.js';

export interface ConnectOptions {
  /** The token. Default: `tokenFile` if given, else `$SOCKIT_TOKEN`, else `<stateDir>/token` if it exists. */
  token?: string;
  tokenFile?: string;
  /** Give up connecting and handshaking after this long. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default deadline for `call()`-style requests. Default 30 s; 0 = none. */
  requestTimeoutMs?: number;
  /** TLS trust; by default fingerprints are pinned in `<stateDir>/known_hosts` on first use. */
  tls?: TlsTrust;
  onTlsPin?: DialOptions['onTlsPin'];
  /** Reach the server through a SOCKS5 or HTTP CONNECT proxy (`--proxy`). */
  proxy?: DialOptions['proxy'];
  stateDir?: string;
  /** Largest frame body accepted from the server. Default 16 MiB. */
  maxBodyBytes?: number;
  /** Environment to read `SOCKIT_TOKEN` from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Dead-server detection: a ping after this much silence, ms. Default 15 s; 0 = off. */
  keepaliveMs?: number;
  /** Unanswered pings before the server counts as gone and the connection closes (CLOSED). Default 3. */
  keepaliveCount?: number;
}

/** What the server said in `welcome`. */
export interface Welcome {
  version: number;
  server: string;
  services: string[];
  auth: 'token' | 'none';
  /** Services usable without authentication. */
  open: string[];
}

/**
 * A connection to a sockit server. Requests get ids, may be pipelined and run concurrently;
 * their answers are matched by id. Errors carry the server's code.
 */
export class Client extends EventEmitter {
  readonly welcome: Welcome;
  readonly authenticated: boolean;
  readonly #framed: FramedSocket;
  readonly #requests = new Map<number, ClientRequest>();
  readonly #requestTimeoutMs: number;
  #nextId = 1;
  #closedError: SockitError | undefined;
  #closed: Promise<void>;
  /** Set by close(): no new requests, the open ones may finish. */
  #closing: SockitError | undefined;
  /** Opens another connection the same way to the same server (a data channel). */
  readonly #dialChannel: () => Promise<Socket>;
  /** The data channels its requests can join (`channelKind`). */
  readonly #channelKind: ChannelKind | undefined;

  /** Use `connect()`. */
  constructor(
    framed: FramedSocket,
    init: {
      welcome: Welcome;
      authenticated: boolean;
      requestTimeoutMs: number;
      closed: Promise<void>;
      dialChannel: () => Promise<Socket>;
      channelKind: ChannelKind | undefined;
    },
  ) {
    super();
    this.#framed = framed;
    this.#dialChannel = init.dialChannel;
    this.#channelKind = init.channelKind;
    this.welcome = init.welcome;
    this.authenticated = init.authenticated;
    this.#requestTimeoutMs = init.requestTimeoutMs;
    this.#closed = init.closed;
  }

  get closed(): boolean {
    return this.#closedError !== undefined || this.#framed.closed;
  }

  /**
   * The data channels requests of this connection can join: `raw` (a terminal's bytes on a
   * second connection) on a plain tcp or unix connection, whose bytes are the socket's own;
   * `sealed` (a tunnel stream's) on a TLS one where this process can seal; undefined for none
   * (an inherited descriptor is one socket, it cannot be dialled again).
   */
  get channelKind(): ChannelKind | undefined {
    return this.#channelKind;
  }

  /**
   * Joins a data channel a request was offered (client/channel.ts): `spawn` with `channel` and
   * long tunnel streams use it.
   */
  joinChannel(key: string): Promise<JoinedChannel> {
    if (this.#channelKind === undefined) {
      return Promise.reject(
        new SockitError('UNSUPPORTED', 'data channels need a tcp, tls or unix connection'),
      );
    }
    return joinChannel(this.#dialChannel, key, CHANNEL_JOIN_WAIT_MS);
  }

  /** Round trip of `ping`/`pong`, in milliseconds. */
  async ping(options: RequestOptions = {}): Promise<number> {
    const started = performance.now();
    await this.call({ type: 'ping' }, undefined, options);
    return performance.now() - started;
  }

  /** Sends `body` to the echo service and returns what comes back. */
  async echo(body: string | Uint8Array, options: RequestOptions = {}): Promise<Buffer> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const frame = await this.call({ type: 'echo' }, bytes, options);
    return frame.body;
  }

  /** Runs a command on the server's exec service and collects `{ code, signal, stdout, stderr, … }`. */
  exec(command: ExecCommand, options?: ExecOptions): Promise<ExecResult> {
    return runExec(this, command, options);
  }

  /** Starts a command on the server's exec service, with stdin/stdout/stderr streams. */
  spawn(command: ExecCommand, options?: SpawnRemoteOptions): RemoteProcess {
    return spawnRemote(this, command, options);
  }

  /** Uploads a local file to the files service, verified by SHA-256 and resumable (client/files.ts). */
  async put(localPath: string, remotePath: string, options?: TransferOptions): Promise<TransferResult> {
    return (await filesClient()).putFile(this, localPath, remotePath, options);
  }

  /** Downloads a file from the files service; it appears locally only once its SHA-256 matches. */
  async get(remotePath: string, localPath: string, options?: TransferOptions): Promise<TransferResult> {
    return (await filesClient()).getFile(this, remotePath, localPath, options);
  }

  /** Lists a remote directory (or tree with `recursive`) of the files service. */
  async list(path?: string, options?: ListOptions): Promise<FileEntry[]> {
    return (await filesClient()).listEntries(this, path, options);
  }

  /** One remote entry; `{ sha256: true }` has the server hash the file. */
  async stat(path: string, options?: StatOptions): Promise<FileEntry> {
    return (await filesClient()).statEntry(this, path, options);
  }

  /** Deletes a remote file, empty directory or symlink. */
  async delete(path: string, options?: { signal?: AbortSignal }): Promise<void> {
    return (await filesClient()).deleteEntry(this, path, options);
  }

  /** A request answered by one frame (ping, echo, stat, list, delete, join). */
  async call(
    header: { type: string; [field: string]: unknown },
    body?: Uint8Array,
    options: RequestOptions = {},
  ) {
    const request = this.open(header, body, {
      timeoutMs: this.#requestTimeoutMs,
      ...options,
      // The frames the catalogue declares final for this type, whatever the caller passed.
      final: undefined,
    });
    // Socket chunks are fresh allocations, so the body view stays valid after this tick.
    return request.done;
  }

  /**
   * Opens a streaming request: frames come to `request.onFrame` (return a promise to slow the
   * server down), `request.done` settles on the frame `options.final` recognises or on an error.
   */
  open(header: { type: string; [field: string]: unknown }, body?: Uint8Array, options: RequestOptions = {}) {
    if (this.#closedError) throw this.#closedError;
    if (this.#closing) throw this.#closing;
    const id = this.#nextId++;
    const request = new ClientRequest(
      id,
      header.type,
      this.#framed,
      options,
      () => this.#requests.delete(id),
      (error) => this.#explainUnsupported(header.type, error),
    );
    this.#requests.set(id, request);
    // The id as the encoder's argument, not in a copy of the header: same bytes, no copy.
    this.#framed.send(header, body, id);
    return request;
  }

  /** Sends a frame that belongs to no request (chat `say`). False: wait for `drained()`. */
  send(header: FrameHeader, body?: Uint8Array): boolean {
    if (this.#closedError) throw this.#closedError;
    return this.#framed.send(header, body);
  }

  /** Joins a room of the chat service; rejects with CONFLICT when the name is taken (client/chat.ts). */
  async chat(options: JoinChatOptions): Promise<ChatRoom> {
    return (await chatClient()).joinChat(this, options);
  }

  drained(): Promise<void> {
    return this.#framed.drained();
  }

  /** Bytes sent on the connection (every request's) and not yet handed to the kernel. */
  get writableLength(): number {
    return this.#framed.writableLength;
  }

  /**
   * Closes gracefully: no new requests; those in flight may finish, for at most `deadlineMs`
   * (default 30 s; 0 = do not wait), after which they are cancelled (CANCELLED) as by
   * `destroy()`. Then the connection ends after pending writes; resolves when it is closed.
   */
  async close(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#closing ??= new SockitError('CLOSED', 'the client is closing: no new requests');
    const pending = [...this.#requests.values()].map((request) => request.done.catch(() => {}));
    if (pending.length > 0) {
      const deadlineMs = options.deadlineMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      });
      await Promise.race([Promise.all(pending), deadline]);
      clearTimeout(timer);
      this.#cancelAll(`the client closed before the request finished (close deadline ${deadlineMs} ms)`);
    }
    this.#framed.end();
    return this.#closed;
  }

  /**
   * Closes at once. Every open request rejects with `error` when one says why (a dead peer), else
   * with CANCELLED ("the client was destroyed").
   */
  destroy(error?: SockitError): void {
    if (error === undefined) this.#cancelAll('the client was destroyed');
    this.#framed.destroy(error);
  }

  /** UNSUPPORTED for a service's request: say which service is missing and how to start it. */
  #explainUnsupported(type: string, error: SockitError): SockitError {
    const service = CATALOGUE.get(type)?.spec.service;
    const hint = service === undefined ? undefined : START_HINTS[service];
    if (error.code !== 'UNSUPPORTED' || hint === undefined || this.welcome.services.includes(service!))
      return error;
    return new SockitError('UNSUPPORTED', `the server does not run ${service} (start it with \`${hint}\`)`, {
      cause: error,
    });
  }

  #cancelAll(message: string): void {
    for (const request of [...this.#requests.values()]) request.cancel(cancelled(undefined, message));
  }

  /** Internal: a frame after the handshake. */
  dispatch(frame: Frame): void | Promise<void> {
    const id = frame.header.id;
    // The server's keepalive asks whether we are still here (we said we answer, in hello).
    if (frame.header.type === 'ping' && id !== undefined) {
      this.#framed.send({ type: 'pong', id });
      return;
    }
    if (id !== undefined) {
      const request = this.#requests.get(id);
      return request?.receive(frame);
    }
    if (frame.header.type === 'error') {
      this.#closedError = errorFromHeader(frame.header, 'connection error');
      this.emit('server-error', this.#closedError);
      return;
    }
    const problem = CATALOGUE.get(frame.header.type)?.validate(frame.header);
    if (problem !== undefined) {
      // A malformed message (chat) cannot be answered: the connection is no longer trusted.
      this.destroy(new SockitError('FRAME_INVALID', `the server sent a malformed frame: ${problem}`));
      return;
    }
    this.emit('frame', frame);
  }

  /** Internal: the socket closed. */
  closedBy(error: Error | undefined): void {
    const reason =
      this.#closedError ??
      (error instanceof SockitError ? error : undefined) ??
      new SockitError('CLOSED', `connection closed${error ? `: ${error.message}` : ''}`, { cause: error });
    this.#closedError = reason;
    for (const request of this.#requests.values()) request.closedBy(reason);
    this.#requests.clear();
    this.emit('close', reason);
  }
}

/** Resolves which token a client uses: explicit, a token file, `$SOCKIT_TOKEN`, or the local state. */
export function resolveClientToken(options: ConnectOptions): string | undefined {
  if (options.token !== undefined) return options.token;
  // An explicit file (`--token-file`) wins over the environment, as any explicit flag does.
  if (options.tokenFile !== undefined) return readTokenFile(options.tokenFile);
  const env = options.env ?? process.env;
  if (env.SOCKIT_TOKEN) return env.SOCKIT_TOKEN;
  return readTokenFile(tokenPath(options.stateDir ?? defaultStateDir(env)), { optional: true });
}

/**
 * Connects to a sockit server, says hello and authenticates with the token when the server asks
 * for one and we have it. Without a token only the server's open services can be used.
 */
export async function connect(address: string | Address, options: ConnectOptions = {}): Promise<Client> {
  const target = typeof address === 'string' ? parseAddress(address) : address;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const stateDir = options.stateDir ?? defaultStateDir(options.env ?? process.env);
  const tlsTrust: TlsTrust = { knownHostsFile: join(stateDir, 'known_hosts'), ...options.tls };
  const keepalive = resolveKeepalive(options.keepaliveMs, options.keepaliveCount);
  // Credentials first: a bad token file must fail before a socket exists that could outlive the error.
  const token = resolveClientToken(options);
  const socket = await dialStream(target, {
    timeoutMs,
    tls: tlsTrust,
    onTlsPin: options.onTlsPin,
    proxy: options.proxy,
  });
  // The first bytes the peer sent, to show when it turns out not to speak sockit (an HTTP port).
  let firstBytes: Buffer | undefined;
  socket.once('data', (chunk: Buffer) => {
    firstBytes = chunk.subarray(0, 64);
  });
  const notSockit = (cause: unknown): SockitError =>
    new SockitError(
      'UNSUPPORTED',
      `${formatAddress(target)} is not a sockit server (${sentText(firstBytes)})`,
      {
        cause,
      },
    );

  let client: Client | undefined;
  let settle: { resolve: (client: Client) => void; reject: (error: Error) => void };
  const handshake = new Promise<Client>((resolve, reject) => {
    settle = { resolve, reject };
  });
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  let welcome: Welcome | undefined;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const framed = new FramedSocket(
    socket,
    {
      onFrame(frame) {
        if (client) return client.dispatch(frame);
        const { header } = frame;
        if (header.type === 'error') {
          settle.reject(errorFromHeader(header, 'refused by server'));
          framed.destroy();
          return;
        }
        if (welcome === undefined && header.type === 'welcome') {
          const problem = CATALOGUE.get('welcome')!.validate(header);
          if (problem !== undefined) {
            settle.reject(
              new SockitError('UNSUPPORTED', `${formatAddress(target)} sent a malformed ${problem}`),
            );
            framed.destroy();
            return;
          }
          welcome = welcomeOf(header as HeaderOfType<'welcome'>);
          if (welcome.auth === 'token' && token !== undefined) {
            framed.send({ type: 'auth', proof: computeProof(token, String(header.nonce ?? '')) });
          } else if (welcome.auth === 'token') {
            client = finish(false);
          }
          return;
        }
        if (welcome !== undefined && header.type === 'ready') {
          client = finish(true);
          // Downloads and -R tunnel streams come in bulk: their records land in recycled buffers.
          framed.recycleReads();
          return;
        }
        settle.reject(
          welcome === undefined
            ? notSockit(undefined)
            : new SockitError('UNSUPPORTED', `unexpected "${header.type}" frame during the handshake`),
        );
        framed.destroy();
      },
      onFrameError(error) {
        // After the handshake the open requests fail with the framing error itself (TOO_LARGE,
        // FRAME_INVALID), not a bare CLOSED. Before the welcome: another protocol on that port.
        if (client) return client.destroy(error);
        settle.reject(welcome ? error : notSockit(error));
        framed.destroy();
      },
      onClose(error) {
        resolveClosed();
        if (client) client.closedBy(error);
        else if (welcome === undefined && firstBytes !== undefined) settle.reject(notSockit(error));
        else
          settle.reject(new SockitError('CLOSED', 'the server closed the connection during the handshake'));
      },
    },
    {
      maxBodyBytes,
      // What a server may send is declared too: an `exit` or `put-ready` with a body, or a
      // `data` frame over 1 MiB, is refused before its bytes are buffered.
      bodyLimit: (header) => CATALOGUE.bodyLimit(header.type, 'authenticated', maxBodyBytes),
    },
  );
  const finish = (authenticated: boolean): Client => {
    const ready = new Client(framed, {
      welcome: welcome!,
      authenticated,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      closed,
      channelKind: channelKindOf(target),
      // The same way to the same server, for a data channel.
      dialChannel: () =>
        dialStream(target, {
          timeoutMs,
          tls: tlsTrust,
          onTlsPin: options.onTlsPin,
          proxy: options.proxy,
        }),
    });
    if (keepalive.intervalMs > 0) startClientKeepalive(ready, framed.socket, keepalive);
    settle.resolve(ready);
    return ready;
  };

  const timer = setTimeout(() => {
    settle.reject(
      new SockitError(
        'TIMEOUT',
        `handshake with the server did not finish within ${timeoutMs} ms` +
          (welcome === undefined ? ` (no welcome: is ${formatAddress(target)} a sockit server?)` : ''),
      ),
    );
    framed.destroy();
  }, timeoutMs);
  // `keepalive`: this client answers the server's pings, whatever its own keepalive setting
  // (servers ignore hello fields they do not know).
  framed.send({ type: 'hello', version: PROTOCOL_VERSION, client: SOCKIT_AGENT, keepalive: true });
  try {
    return await handshake;
  } finally {
    clearTimeout(timer);
  }
}

/** `it sent: "HTTP/1.1 400 Bad Request\r\n…"`: the peer's first bytes, printable and short. */
function sentText(bytes: Buffer | undefined): string {
  if (bytes === undefined || bytes.length === 0) return 'it sent nothing sockit understands';
  const text = bytes.subarray(0, 40).toString('latin1');
  const shown = JSON.stringify(text).slice(1, -1);
  return `it sent: "${shown}${bytes.length > 40 ? '…' : ''}"`;
}

/** What the client keeps of a welcome the catalogue checked. */
function welcomeOf(header: HeaderOfType<'welcome'>): Welcome {
  return {
    version: header.version,
    server: header.server ?? '',
    services: header.services,
    auth: header.auth,
    open: header.open ?? [],
  };
}

/** The data channels a connection to `target` can join (Client.channelKind); an inherited descriptor is one socket. */
function channelKindOf(target: Address): ChannelKind | undefined {
  if (target.kind === 'tcp' || target.kind === 'unix') return 'raw';
  if (target.kind === 'tls' && sealedChannelsAvailable()) return 'sealed';
  return undefined;
}
