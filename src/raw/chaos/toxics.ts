import { EventEmitter } from 'node:events';
import { SockitError } from '../../errors.js';

/** Toxiproxy's toxics, and the three that only datagrams can suffer. */
export const TOXIC_TYPES = [
  'latency',
  'bandwidth',
  'slicer',
  'limit-data',
  'timeout',
  'reset-peer',
  'slow-close',
  'loss',
  'duplicate',
  'reorder',
] as const;

/** One of TOXIC_TYPES. */
export type ToxicType = (typeof TOXIC_TYPES)[number];

/** Which direction a toxic poisons: client → target (`up`), target → client (`down`), or both. */
export type ToxicStream = 'up' | 'down' | 'both';

/** One toxic as the control API shows it; attributes are milliseconds, bytes, or bytes per second. */
export interface Toxic {
  name: string;
  type: ToxicType;
  stream: ToxicStream;
  /**
   * Probability it applies: on streams rolled once per connection and direction (as toxiproxy
   * rolls once per link), on UDP per datagram.
   */
  toxicity: number;
  attributes: Record<string, number>;
}

/**
 * The longest time a toxic may name, in ms: Node's timers hold at most 2^31-1 ms (about 24.8
 * days) and fire at once for anything longer, so a longer one is refused, not shortened.
 */
export const MAX_TOXIC_MS = 2 ** 31 - 1;

/**
 * Each type's attributes (ms, bytes, or bytes per second): the first is the one a spec's bare
 * value sets; the rest default as shown.
 */
export const TOXIC_ATTRIBUTES: Record<
  ToxicType,
  { key: string; unit: 'ms' | 'bytes' | 'rate'; default: number }[]
> = {
  latency: [
    { key: 'latency', unit: 'ms', default: 0 },
    { key: 'jitter', unit: 'ms', default: 0 },
  ],
  bandwidth: [{ key: 'rate', unit: 'rate', default: 1024 * 1024 }],
  slicer: [
    { key: 'size', unit: 'bytes', default: 64 },
    { key: 'variation', unit: 'bytes', default: 0 },
    { key: 'delay', unit: 'ms', default: 0 },
  ],
  'limit-data': [{ key: 'bytes', unit: 'bytes', default: 0 }],
  timeout: [{ key: 'timeout', unit: 'ms', default: 0 }],
  'reset-peer': [{ key: 'timeout', unit: 'ms', default: 0 }],
  'slow-close': [{ key: 'delay', unit: 'ms', default: 0 }],
  loss: [],
  duplicate: [],
  reorder: [{ key: 'delay', unit: 'ms', default: 20 }],
};

const DATAGRAM_ONLY: readonly ToxicType[] = ['loss', 'duplicate', 'reorder'];
const DATAGRAM_TOXICS: readonly ToxicType[] = ['latency', 'bandwidth', 'loss', 'duplicate', 'reorder'];

/** The USAGE error for a toxic that cannot be: `text` is the flag or the JSON it came as. */
export const badToxic = (text: string, why: string): SockitError =>
  new SockitError(
    'USAGE',
    `toxic "${text}": ${why} (form TYPE[:up|down|both][:VALUE][:key=value…], e.g. latency:down:200ms:jitter=50ms)`,
  );

/** The refusal of a time over MAX_TOXIC_MS; `what` names it (an attribute, or the text given). */
export const overLongestWait = (text: string, what: string): SockitError =>
  badToxic(text, `${what} is over the longest wait, ${MAX_TOXIC_MS} ms (24.8 days)`);

/**
 * The toxicity a toxic gets when none is given: 1 (toxiproxy's), except reorder's 0.5: held
 * back all alike, every datagram would wait the same and none would overtake another.
 */
export function defaultToxicity(type: ToxicType): number {
  return type === 'reorder' ? 0.5 : 1;
}

/** Checks a toxic (from a flag or the control API) and fills in defaults; throws USAGE. */
export function normalizeToxic(input: unknown, datagrams: boolean): Omit<Toxic, 'name'> & { name?: string } {
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const text = JSON.stringify(input);
  const type = String(raw.type ?? '').replace('_', '-') as ToxicType;
  if (!TOXIC_TYPES.includes(type)) throw badToxic(text, `unknown type "${String(raw.type)}"`);
  if (datagrams && !DATAGRAM_TOXICS.includes(type)) {
    throw badToxic(text, `${type} acts on streams; udp:// takes ${DATAGRAM_TOXICS.join(', ')}`);
  }
  if (!datagrams && DATAGRAM_ONLY.includes(type)) throw badToxic(text, `${type} acts on datagrams (udp://)`);
  const stream = raw.stream ?? 'both';
  if (stream !== 'up' && stream !== 'down' && stream !== 'both')
    throw badToxic(text, 'stream is up, down or both');
  const toxicity = raw.toxicity ?? defaultToxicity(type);
  if (typeof toxicity !== 'number' || !(toxicity >= 0 && toxicity <= 1))
    throw badToxic(text, 'toxicity is 0-1');
  const given = (
    typeof raw.attributes === 'object' && raw.attributes !== null ? raw.attributes : {}
  ) as Record<string, unknown>;
  const attributes: Record<string, number> = {};
  for (const spec of TOXIC_ATTRIBUTES[type]) {
    const value = given[spec.key] ?? spec.default;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw badToxic(
        text,
        `${spec.key} must be a number of ${spec.unit === 'ms' ? 'milliseconds' : 'bytes'}`,
      );
    }
    if (spec.unit === 'ms' && value > MAX_TOXIC_MS) throw overLongestWait(text, spec.key);
    attributes[spec.key] = value;
  }
  for (const key of Object.keys(given)) {
    if (!(key in attributes)) throw badToxic(text, `${type} has no attribute "${key}"`);
  }
  if (type === 'latency' && attributes.latency! + attributes.jitter! > MAX_TOXIC_MS) {
    // A datagram or chunk can wait latency + jitter: that sum must fit a timer too.
    throw overLongestWait(text, 'latency + jitter');
  }
  if (type === 'bandwidth' && attributes.rate === 0) throw badToxic(text, 'rate must be above 0');
  if (type === 'slicer' && attributes.size === 0) throw badToxic(text, 'size must be above 0');
  const name = raw.name;
  if (name !== undefined && (typeof name !== 'string' || !/^[\w.-]{1,64}$/.test(name))) {
    throw badToxic(text, 'name is 1-64 letters, digits, _ . -');
  }
  return { ...(name ? { name } : {}), type, stream, toxicity, attributes };
}

/** A toxic with the id that tells one added instance from a later one of the same name. */
export interface LiveToxic extends Toxic {
  readonly id: number;
}

/** The toxics of one chaos proxy; connections read it live, so a change applies at once. Emits 'change'. */
export class ToxicSet extends EventEmitter {
  readonly datagrams: boolean;
  #toxics: LiveToxic[] = [];
  #nextId = 1;

  constructor(datagrams: boolean) {
    super();
    this.datagrams = datagrams;
    // Every live connection's link listens for `change`: one per connection, no leak.
    this.setMaxListeners(0);
  }

  /** Validates and adds a toxic; CONFLICT if its name is taken. */
  add(input: unknown): LiveToxic {
    const toxic = normalizeToxic(input, this.datagrams);
    const name = toxic.name ?? `${toxic.type}_${toxic.stream}`;
    if (this.#toxics.some((existing) => existing.name === name)) {
      throw new SockitError('CONFLICT', `a toxic named "${name}" exists; remove it first or give name=`);
    }
    const live: LiveToxic = { ...toxic, name, id: this.#nextId++ };
    this.#toxics = [...this.#toxics, live];
    this.emit('change');
    return live;
  }

  /** Removes a toxic by name; false when there is none. */
  remove(name: string): boolean {
    const before = this.#toxics.length;
    this.#toxics = this.#toxics.filter((toxic) => toxic.name !== name);
    if (this.#toxics.length === before) return false;
    this.emit('change');
    return true;
  }

  clear(): void {
    this.#toxics = [];
    this.emit('change');
  }

  /** The toxics in the order they apply, as the API shows them (no ids). */
  list(): Toxic[] {
    return this.#toxics.map(({ id: _id, ...toxic }) => toxic);
  }

  /** Toxics poisoning one direction, in order. */
  for(direction: 'up' | 'down'): readonly LiveToxic[] {
    return this.#toxics.filter((toxic) => toxic.stream === 'both' || toxic.stream === direction);
  }
}
