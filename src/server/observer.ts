import type { RequestOutcome } from './request.js';
import type { Service } from './service.js';

/**
 * What the server core tells an observer (metrics): one call per event, no return value, so
 * watching costs a function call and changes nothing. Every method is optional.
 */
export interface ServerObserver {
  /** A connection was accepted (not refused). */
  connectionOpened?(): void;
  /** It closed, having read and written this many bytes (TLS: the encrypted bytes). */
  connectionClosed?(bytesIn: number, bytesOut: number): void;
  /**
   * A connection was turned away before its handshake: `limit` (the connection cap, told why),
   * `overflow` (over the cap with too many refusals under way: closed without a word),
   * `draining` (arrived while the server shuts down).
   */
  refused?(reason: string): void;
  /** A connection was closed with an error frame: `AUTH_FAILED`, `TIMEOUT`, `BUSY`, … */
  connectionError?(code: string): void;
  /** A request of `type` opened. */
  requestStarted?(type: string): void;
  /**
   * It ended with `code`: `OK`, or the error code it was failed with; `outcome` when its
   * service reports more (file bytes, a command's exit status).
   */
  requestFinished?(type: string, code: string, outcome: RequestOutcome | undefined): void;
  /** An id-less message (chat `say`) arrived. */
  message?(type: string): void;
}

/** The services with every handler wrapped to tell `observer` when requests start and end. */
export function observedServices(services: readonly Service[], observer: ServerObserver): Service[] {
  return services.map((service) => ({
    ...service,
    name: service.name,
    requests: Object.fromEntries(
      Object.entries(service.requests ?? {}).map(([type, handler]) => [
        type,
        (request: Parameters<typeof handler>[0]) => {
          observer.requestStarted?.(type);
          request.onFinish = (done) => observer.requestFinished?.(type, done.finalCode, done.outcome);
          return handler(request);
        },
      ]),
    ),
    messages: Object.fromEntries(
      Object.entries(service.messages ?? {}).map(([type, handler]) => [
        type,
        (frame: Parameters<typeof handler>[0], connection: Parameters<typeof handler>[1]) => {
          observer.message?.(type);
          return handler(frame, connection);
        },
      ]),
    ),
  }));
}
