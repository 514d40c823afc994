/** Shared setup of the files tests: a served root in a temp dir, clients, random files. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { type Client, connect } from '../../src/client/client.js';
import { SockitError } from '../../src/errors.js';
import type { ChecksumName } from '../../src/protocol/files.js';
import type { Server } from '../../src/server/server.js';
import type { Service } from '../../src/server/service.js';
import { type FilesOptions, filesService } from '../../src/services/files/index.js';
import { createChecksum } from '../../src/storage/checksum.js';
import { startServer, TEST_TOKEN, type TestServeOptions, type Transport } from '../helpers.js';

export { writeRandomFile } from '../../bench/lib/random-file.js';

export interface FilesFixture {
  server: Server;
  address: string;
  /** The served root. */
  root: string;
  /** A scratch directory beside the root: never served. */
  local: string;
  /** Another directory outside the root, for escape attempts. */
  outside: string;
  /** An authenticated client; closed by `stop()`. */
  connect(options?: { token?: string }): Promise<Client>;
  stop(): Promise<void>;
}

/** Starts a server with the files service on a fresh temp root. */
export async function startFiles(
  options: {
    files?: Omit<FilesOptions, 'root'>;
    /** Wraps the service, to watch or hold its requests. */
    wrap?: (service: Service) => Service;
    serve?: TestServeOptions;
    /** Where the temp dirs go. Default os.tmpdir(). */
    baseDir?: string;
  } = {},
): Promise<FilesFixture> {
  const base = await mkdtemp(join(options.baseDir ?? tmpdir(), 'sockit-files-'));
  const root = join(base, 'root');
  const local = join(base, 'local');
  const outside = join(base, 'outside');
  for (const dir of [root, local, outside]) await mkdir(dir);
  let service = filesService({ ...options.files, root });
  if (options.wrap) service = options.wrap(service);
  const started = await startServer({ services: [service], ...options.serve });
  const clients: Client[] = [];
  return {
    server: started.server,
    address: started.address,
    root,
    local,
    outside,
    async connect(connectOptions = {}) {
      const client = await connect(started.address, {
        token: connectOptions.token ?? TEST_TOKEN,
        stateDir: started.stateDir,
        env: {},
      });
      clients.push(client);
      return client;
    },
    async stop() {
      for (const client of clients) client.destroy();
      await started.stop();
      await rm(base, { recursive: true, force: true });
    },
  };
}

/** The files server and authenticated client a suite's tests share (set once its `before` hook ran). */
export interface FilesSuite {
  files: FilesFixture;
  client: Client;
}

/**
 * Call inside a `describe`: starts a files server on a fresh temp root and one client before the
 * suite's tests, and stops them after. Read the fields inside tests, not at describe time.
 */
export function filesAndClientPerSuite(transport: Transport = 'tcp'): FilesSuite {
  const suite = {} as FilesSuite;
  before(async () => {
    suite.files = await startFiles({ serve: { transport } });
    suite.client = await suite.files.connect();
  });
  after(async () => {
    await suite.files?.stop();
  });
  return suite;
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The digest of a file with a named whole-file checksum, streamed. */
export async function checksumFile(path: string, name: ChecksumName): Promise<string> {
  const checksum = await createChecksum(name);
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    checksum.update(chunk as Buffer);
  return checksum.digest();
}

/** Every path below `dir` (relative), to show that nothing appeared or vanished. */
export async function treeOf(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

/** An `assert.rejects` check: a SockitError with this code. */
export function isCode(code: string): (error: unknown) => boolean {
  return (error: unknown) => error instanceof SockitError && error.code === code;
}
