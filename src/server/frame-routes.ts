import type { CatalogueEntry, FrameCatalogue } from '../protocol/catalogue.js';
import { TRUST_PHASES, type TrustPhase } from '../protocol/schema.js';
import type { MessageHandler, RequestHandler, Service } from './service.js';

/** What opens a request of one type: its handler, its service and its declaration. */
export interface RequestOpener {
  readonly handler: RequestHandler;
  readonly service: string;
  readonly entry: CatalogueEntry;
  /** The service's `refused` hook: told about requests refused before the handler. */
  readonly refused: Service['refused'];
}

/** What handles a message (a frame without id) of one type. */
export interface MessageRoute {
  readonly handler: MessageHandler;
  readonly service: string;
}

/**
 * Everything a server connection needs to know about one declared frame type, gathered once per
 * server: a frame costs one lookup (and none at all when it has the previous frame's type, see
 * `RouteCache`) instead of one in each of the catalogue, the request table, the phase sets and
 * the follow-up set.
 */
export interface FrameRoute {
  readonly type: string;
  readonly entry: CatalogueEntry;
  /** Set when a service opens requests of this type. */
  readonly opener: RequestOpener | undefined;
  /** Set when a service takes this type as a message. */
  readonly message: MessageRoute | undefined;
  /** A follow-up of some served request: dropped silently once its request has ended. */
  readonly followUp: boolean;
  /** Whether the server accepts this type in each phase (frames only servers send: every phase). */
  readonly accepted: Readonly<Record<TrustPhase, boolean>>;
  /** Declared body limit in each phase before the phase's own cap: 0 where not accepted. */
  readonly bodyLimit: Readonly<Record<TrustPhase, number>>;
}

/** Builds the route of every declared type from the catalogue and the served handlers. */
export function buildRoutes(
  catalogue: FrameCatalogue,
  requests: ReadonlyMap<string, RequestOpener>,
  messages: ReadonlyMap<string, MessageRoute>,
  followUps: ReadonlySet<string>,
): ReadonlyMap<string, FrameRoute> {
  const routes = new Map<string, FrameRoute>();
  for (const entry of catalogue.entries()) {
    const { type, spec, phases } = entry;
    const perPhase = <T>(value: (phase: TrustPhase) => T): Record<TrustPhase, T> => {
      const out = {} as Record<TrustPhase, T>;
      for (const phase of TRUST_PHASES) out[phase] = value(phase);
      return out;
    };
    const accepted = perPhase((phase) => phases === undefined || phases.has(phase));
    routes.set(type, {
      type,
      entry,
      opener: requests.get(type),
      message: messages.get(type),
      followUp: followUps.has(type),
      accepted,
      bodyLimit: perPhase((phase) =>
        accepted[phase] ? (spec.body === 'max' ? Number.POSITIVE_INFINITY : spec.body) : 0,
      ),
    });
  }
  return routes;
}

/**
 * The route of a frame type, remembering the last one: a connection's frames mostly come in runs
 * of one type (pipelined requests, file chunks), and the decoder's body-limit check and the
 * dispatch after it ask for the same type back to back. The compact-header reader hands out
 * the same string for the same type, so the check is usually a pointer comparison.
 */
export class RouteCache {
  readonly #routes: ReadonlyMap<string, FrameRoute>;
  #type: string | undefined;
  #route: FrameRoute | undefined;

  constructor(routes: ReadonlyMap<string, FrameRoute>) {
    this.#routes = routes;
  }

  /** The route of `type`, or undefined for a type nobody declared. */
  get(type: string): FrameRoute | undefined {
    if (type !== this.#type) {
      this.#type = type;
      this.#route = this.#routes.get(type);
    }
    return this.#route;
  }
}
