import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SockitError } from '../../errors.js';
import { type Address, formatAddress, isLoopback } from '../../transport/address.js';
import { parseToxicSpec } from './spec.js';
import type { ToxicSet } from './toxics.js';

/** The largest request body the control API reads. */
const MAX_BODY_BYTES = 64 * 1024;
/** A control request must arrive whole within this (a fixed deadline, not an idle one). */
const REQUEST_DEADLINE_MS = 5000;

/** A running control API. */
export interface ControlServer {
  readonly address: Address;
  close(): Promise<void>;
}

/**
 * The chaos control API (toxiproxy's, reduced to one proxy), JSON over node:http, loopback only:
 *
 * - `GET /toxics` → `[toxic…]`
 * - `POST /toxics` with a toxic (`{"type":"latency","stream":"down","attributes":{"latency":200}}`)
 *   or a flag's text (`{"spec":"latency:down:200ms"}`) → 201 and the toxic
 * - `DELETE /toxics/NAME` → 204; `DELETE /toxics` removes all → 204
 *
 * Errors answer `{"error":{"code","message"}}` with 400 (USAGE: a bad toxic, body or name), 404,
 * 409 (CONFLICT) or 413 (TOO_LARGE); anything else is 500, with one line on stderr.
 */
export async function startControl(address: Address, toxics: ToxicSet): Promise<ControlServer> {
  if (address.kind !== 'tcp' || !isLoopback(address)) {
    throw new SockitError(
      'USAGE',
      `--control ${formatAddress(address)}: the control API listens on loopback TCP only (e.g. 127.0.0.1:8474)`,
    );
  }
  const server = http.createServer((request, response) => {
    void answer(request, toxics).then(
      ({ status, body }) => send(response, status, body),
      (error: unknown) => {
        // The 500 answer points at this process's log, so what went wrong is written there.
        if (!(error instanceof SockitError)) {
          process.stderr.write(
            `sockit: control API: ${request.method} ${request.url}: ${error instanceof Error ? error.message : String(error)}\n`,
          );
        }
        send(response, ...errorAnswer(error));
      },
    );
  });
  // Fixed deadlines from the request's first byte (not an inactivity timer a slow client resets).
  server.requestTimeout = REQUEST_DEADLINE_MS;
  server.headersTimeout = REQUEST_DEADLINE_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new SockitError('UNAVAILABLE', `--control: ${error.message}`)));
    server.listen(address.port, address.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    address: { kind: 'tcp', host: address.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(
  request: http.IncomingMessage,
  toxics: ToxicSet,
): Promise<{ status: number; body?: unknown }> {
  const path = (request.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
  const method = request.method ?? 'GET';
  if (path === '/toxics') {
    if (method === 'GET') return { status: 200, body: toxics.list() };
    if (method === 'DELETE') {
      toxics.clear();
      return { status: 204 };
    }
    if (method === 'POST') {
      const body = await readJson(request);
      const spec = (body as { spec?: unknown } | null)?.spec;
      const toxic = toxics.add(typeof spec === 'string' ? parseToxicSpec(spec) : body);
      const { id: _id, ...shown } = toxic;
      return { status: 201, body: shown };
    }
    return { status: 405, body: errorBody('USAGE', `${method} /toxics: use GET, POST or DELETE`) };
  }
  const named = /^\/toxics\/([^/]+)$/.exec(path);
  if (named && method === 'DELETE') {
    const name = toxicName(named[1]!);
    if (!toxics.remove(name))
      return { status: 404, body: errorBody('NOT_FOUND', `no toxic named "${name}"`) };
    return { status: 204 };
  }
  if (named && method === 'GET') {
    const name = toxicName(named[1]!);
    const toxic = toxics.list().find((candidate) => candidate.name === name);
    if (!toxic) return { status: 404, body: errorBody('NOT_FOUND', `no toxic named "${name}"`) };
    return { status: 200, body: toxic };
  }
  return {
    status: 404,
    body: errorBody('NOT_FOUND', `${method} ${path}: the API is GET/POST/DELETE /toxics`),
  };
}

/** A toxic's name from its URL segment; a malformed escape (`%E0`) is the client's error, 400. */
function toxicName(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new SockitError('USAGE', `"${segment}" is not a percent-encoded toxic name`);
  }
}

function readJson(request: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Answered (413) while the rest is read and dropped, within the request's fixed
        // deadline; destroying the request here would lose the answer too.
        request.off('data', onData);
        request.resume();
        reject(new SockitError('TOO_LARGE', `the body is over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    request.on('data', onData);
    request.once('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(
          new SockitError(
            'USAGE',
            'the body is not JSON; send a toxic object or {"spec":"TYPE:STREAM:VALUE"}',
          ),
        );
      }
    });
    request.once('error', reject);
  });
}

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

function errorAnswer(error: unknown): [number, unknown] {
  if (error instanceof SockitError) {
    const status = error.code === 'CONFLICT' ? 409 : error.code === 'TOO_LARGE' ? 413 : 400;
    return [status, errorBody(error.code, error.message)];
  }
  return [500, errorBody('INTERNAL', 'the control API failed; see the chaos process log')];
}

function send(response: http.ServerResponse, status: number, body?: unknown): void {
  if (response.headersSent || response.destroyed) return;
  if (body === undefined) {
    response.writeHead(status).end();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    // A body refused unread: the connection is not reused.
    ...(status === 413 ? { connection: 'close' } : {}),
  });
  response.end(text);
}
