/**
 * Every frame type of every service, in one table: what the server dispatches and accepts in
 * each phase, what the decoder lets a body be, what the client counts as a request's last
 * frame, what docs/protocol.md lists and what the fuzzers generate. Each service declares its
 * frames in its own file (`session.ts`, `echo.ts`, `exec.ts`, `files.ts`, `chat.ts`,
 * `tunnel.ts`); this module only gathers them and answers questions about them.
 */
import { CHAT_FRAMES } from './chat.js';
import { ECHO_FRAMES } from './echo.js';
import { EXEC_FRAMES } from './exec.js';
import { FILES_FRAME_SPECS } from './files.js';
import {
  compileFrame,
  type FrameDeclarations,
  type FrameSpec,
  type HeadersOf,
  type HeaderValidator,
  type TrustPhase,
} from './schema.js';
import { SESSION_FRAMES } from './session.js';
import { TUNNEL_FRAME_SPECS } from './tunnel.js';

/** Each service's declarations, in the order docs/protocol.md lists them. */
export const SERVICE_FRAMES = {
  session: SESSION_FRAMES,
  echo: ECHO_FRAMES,
  exec: EXEC_FRAMES,
  files: FILES_FRAME_SPECS,
  chat: CHAT_FRAMES,
  tunnel: TUNNEL_FRAME_SPECS,
} as const;

/** The header of any frame sockit's own services send or accept, as a discriminated union. */
export type CatalogueHeader =
  | HeadersOf<typeof SESSION_FRAMES>
  | HeadersOf<typeof ECHO_FRAMES>
  | HeadersOf<typeof EXEC_FRAMES>
  | HeadersOf<typeof FILES_FRAME_SPECS>
  | HeadersOf<typeof CHAT_FRAMES>
  | HeadersOf<typeof TUNNEL_FRAME_SPECS>;

/** The validated header of frame type `T`. */
export type HeaderOfType<T extends CatalogueHeader['type']> = Extract<CatalogueHeader, { type: T }>;

/** One declared frame type with what is compiled from its declaration once, at load. */
export interface CatalogueEntry {
  readonly type: string;
  readonly spec: FrameSpec;
  readonly validate: HeaderValidator;
  /** The phases a server accepts it in; undefined: any (frames only servers send). */
  readonly phases: ReadonlySet<TrustPhase> | undefined;
  /**
   * Requests: each reply type with its entry and whether it ends the request, so a client
   * checks an answer with one lookup.
   */
  readonly answers: ReadonlyMap<string, RequestAnswer> | undefined;
}

/** A frame type that answers a request, as that request's entry knows it. */
export interface RequestAnswer {
  readonly entry: CatalogueEntry;
  readonly final: boolean;
}

/**
 * A set of frame declarations, indexed: the built-in one (`CATALOGUE`), or that plus the frames
 * of a server's own services (`Service.frames`).
 */
export class FrameCatalogue {
  readonly #entries = new Map<string, CatalogueEntry>();

  constructor(declarations: Iterable<FrameDeclarations>) {
    const answers = new Map<string, Map<string, RequestAnswer>>();
    for (const frames of declarations) {
      for (const [type, spec] of Object.entries(frames)) {
        if (this.#entries.has(type)) throw new Error(`frame type "${type}" is declared twice`);
        const replies = spec.replies === undefined ? undefined : new Map<string, RequestAnswer>();
        if (replies !== undefined) answers.set(type, replies);
        this.#entries.set(type, {
          type,
          spec,
          validate: compileFrame(type, spec),
          phases: spec.phases === undefined ? undefined : new Set(spec.phases),
          answers: replies,
        });
      }
    }
    // Once every entry exists: a request may name replies declared after it.
    for (const [type, replies] of answers) {
      const { spec } = this.#entries.get(type)!;
      for (const reply of spec.replies!) {
        const entry = this.#entries.get(reply);
        if (entry !== undefined) replies.set(reply, { entry, final: spec.final?.includes(reply) ?? false });
      }
    }
  }

  /** A catalogue with `more` declarations added (a server's own services). */
  extend(more: Iterable<FrameDeclarations>): FrameCatalogue {
    return new FrameCatalogue([...this.#declarations(), ...more]);
  }

  *#declarations(): Iterable<FrameDeclarations> {
    for (const entry of this.#entries.values()) yield { [entry.type]: entry.spec };
  }

  /** The entry of `type`, or undefined for a type nobody declared. */
  get(type: string): CatalogueEntry | undefined {
    return this.#entries.get(type);
  }

  /** Every entry, in declaration order. */
  entries(): IterableIterator<CatalogueEntry> {
    return this.#entries.values();
  }

  /**
   * The largest body `type` may announce in `phase`, given the phase's own limit: 0 when the
   * type is not accepted in that phase (it is refused without reading its body anyway), the
   * declared limit capped by the phase's otherwise. An undeclared type gets the phase's limit
   * (its UNSUPPORTED answer comes once the frame is whole).
   */
  bodyLimit(type: string, phase: TrustPhase, phaseLimit: number): number {
    const entry = this.#entries.get(type);
    if (entry === undefined) return phaseLimit;
    if (entry.phases !== undefined && !entry.phases.has(phase)) return 0;
    const { body } = entry.spec;
    return body === 'max' ? phaseLimit : Math.min(body, phaseLimit);
  }

  /**
   * What is wrong with `header` as a frame answering a request of `requestType`: a type the
   * request does not declare among its replies, or a header that breaks its own declaration.
   * Undefined when it is fine, when `requestType` is not declared here (nothing to check), or
   * for a type nobody declared (a newer server's; ignored, as unknown fields are).
   */
  replyProblem(
    requestType: string,
    header: Readonly<Record<string, unknown>> & { type: string },
  ): string | undefined {
    return this.answerProblem(requestType, this.#entries.get(requestType)?.answers, header);
  }

  /** `replyProblem` with the request's `answers` already looked up (a client request keeps them). */
  answerProblem(
    requestType: string,
    answers: ReadonlyMap<string, RequestAnswer> | undefined,
    header: Readonly<Record<string, unknown>> & { type: string },
  ): string | undefined {
    const answer = answers?.get(header.type);
    if (answer !== undefined) return answer.entry.validate(header);
    if (header.type === 'error') return this.#entries.get('error')?.validate(header);
    // Nothing to check for a request nobody declared; a type nobody declared may be a newer
    // server's addition: the request ignores it.
    if (answers === undefined || !this.#entries.has(header.type)) return undefined;
    return `a "${header.type}" frame, which does not answer "${requestType}"`;
  }

  /** Whether `replyType` ends a request of `requestType` (`error` always does). */
  isFinal(requestType: string, replyType: string): boolean {
    if (replyType === 'error') return true;
    return this.#entries.get(requestType)?.spec.final?.includes(replyType) ?? true;
  }
}

/** sockit's own frames: every built-in service, declared once. */
export const CATALOGUE = new FrameCatalogue(Object.values(SERVICE_FRAMES));
