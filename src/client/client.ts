import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { SockitError } from '../errors.js';
import { computeProof, PROTOCOL_VERSION } from '../protocol/auth.js';
import { errorFromHeader, type Frame, type FrameHeader } from '../protocol/frame.js';
import { defaultStateDir, readTokenFile, tokenPath } from '../state.js';
import { type Address, parseAddress } from '../transport/address.js';
import { type DialOptions, dialStream, type TlsTrust } from '../transport/dial.js';
import { FramedSocket } from '../transport/framed-socket.js';
import { resolveKeepalive } from '../transport/keepalive.js';
import { SOCKIT_AGENT } from '../version.js';
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

/** The files and chat clients load on first use: a CLI run of `exec` or `ping` never pays for them. */
const filesClient = () => import('./files.js');
const chatClient = () => import('./chat.js');

import { ClientRequest, type RequestOptions } from './request.js';

export interface ConnectOptions {
  /** The token. Default: `$SOCKIT_TOKEN`, else `tokenFile`, else `<stateDir>/token` if it exists. */
  token?: string;
  tokenFile?: string;
  /** Give up connecting and handshaking after this long. Default 10 s. */
  connectTimeoutMs?: number;
  /** Default deadline for `call()`-style requests. Default 30 s; 0 = none. */
  requestTimeoutMs?: number;
  /** TLS trust; by default fingerprints are pinned in `<stateDir>/known_hosts` on first use. */
  tls?: TlsTrust;
  onTlsPin?: DialOptions['onTlsPin'];
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

  /** Use `connect()`. */
  constructor(
    framed: FramedSocket,
    init: { welcome: Welcome; authenticated: boolean; requestTimeoutMs: number; closed: Promise<void> },
  ) {
    super();
    this.#framed = framed;
    this.welcome = init.welcome;
    this.authenticated = init.authenticated;
    this.#requestTimeoutMs = init.requestTimeoutMs;
    this.#closed = init.closed;
  }

  get closed(): boolean {
    return this.#closedError !== undefined || this.#framed.closed;
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
      final: () => true,
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
    const id = this.#nextId++;
    const request = new ClientRequest(id, this.#framed, options, () => this.#requests.delete(id));
    this.#requests.set(id, request);
    this.#framed.send({ ...header, id }, body);
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

  /** Closes the connection after pending writes; resolves when it is closed. */
  close(): Promise<void> {
    this.#framed.end();
    return this.#closed;
  }

  /** Closes at once, failing every open request with CLOSED (or with `error`, which says why). */
  destroy(error?: SockitError): void {
    this.#framed.destroy(error);
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

/** Resolves which token a client uses: explicit, `$SOCKIT_TOKEN`, a token file, or the local state. */
export function resolveClientToken(options: ConnectOptions): string | undefined {
  if (options.token !== undefined) return options.token;
  const env = options.env ?? process.env;
  if (env.SOCKIT_TOKEN) return env.SOCKIT_TOKEN;
  if (options.tokenFile !== undefined) return readTokenFile(options.tokenFile);
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
  const socket = await dialStream(target, { timeoutMs, tls: tlsTrust, onTlsPin: options.onTlsPin });
  const token = resolveClientToken(options);

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
          welcome = parseWelcome(header);
          if (welcome.auth === 'token' && token !== undefined) {
            framed.send({ type: 'auth', proof: computeProof(token, String(header.nonce ?? '')) });
          } else if (welcome.auth === 'token') {
            client = finish(false);
          }
          return;
        }
        if (welcome !== undefined && header.type === 'ready') {
          client = finish(true);
          return;
        }
        settle.reject(
          new SockitError('UNSUPPORTED', `unexpected "${header.type}" frame during the handshake`),
        );
        framed.destroy();
      },
      onFrameError(error) {
        settle.reject(error);
        framed.destroy();
      },
      onClose(error) {
        resolveClosed();
        if (client) client.closedBy(error);
        else
          settle.reject(new SockitError('CLOSED', 'the server closed the connection during the handshake'));
      },
    },
    { maxBodyBytes: options.maxBodyBytes },
  );
  const finish = (authenticated: boolean): Client => {
    const ready = new Client(framed, {
      welcome: welcome!,
      authenticated,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      closed,
    });
    if (keepalive.intervalMs > 0) startClientKeepalive(ready, framed.socket, keepalive);
    settle.resolve(ready);
    return ready;
  };

  const timer = setTimeout(() => {
    settle.reject(
      new SockitError('TIMEOUT', `handshake with the server did not finish within ${timeoutMs} ms`),
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

function parseWelcome(header: FrameHeader): Welcome {
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  return {
    version: Number(header.version),
    server: String(header.server ?? ''),
    services: strings(header.services),
    auth: header.auth === 'token' ? 'token' : 'none',
    open: strings(header.open),
  };
}
