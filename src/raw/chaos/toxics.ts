import { EventEmitter } from 'node:events';
import { SockitError } from '../../errors.js';
import { parseDuration } from '../../options.js';

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

export type ToxicType = (typeof TOXIC_TYPES)[number];

/** Which direction a toxic poisons: client → target (`up`), target → client (`down`), or both. */
export type ToxicStream = 'up' | 'down' | 'both';

/** One toxic as the control API shows it; attributes are milliseconds, bytes, or bytes per second. */
export interface Toxic {
  name: string;
  type: ToxicType;
  stream: ToxicStream;
  /** Probability it applies: per connection on streams, per datagram on UDP. */
  toxicity: number;
  attributes: Record<string, number>;
}

type Unit = 'ms' | 'bytes' | 'rate';

/** Each type's attributes: the first is the one a spec's bare value sets; the rest default as shown. */
const ATTRIBUTES: Record<ToxicType, { key: string; unit: Unit; default: number }[]> = {
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

const bad = (text: string, why: string): SockitError =>
  new SockitError(
    'USAGE',
    `toxic "${text}": ${why} (form TYPE[:up|down|both][:VALUE][:key=value…], e.g. latency:down:200ms:jitter=50ms)`,
  );

/**
 * Parses `--toxic TYPE[:STREAM][:VALUE][:key=value…]`: `latency:down:200ms:jitter=50ms`,
 * `bandwidth:up:100KB`, `slicer:both:16:delay=1ms`, `limit-data:down:1000`, `timeout:both:2s`,
 * `reset-peer::500ms`, `slow-close:down:1s`, `loss:up:30%`. For loss, duplicate and reorder the
 * bare value is the probability per datagram (`p=` elsewhere). `name=` names it.
 */
export function parseToxicSpec(text: string): Omit<Toxic, 'name'> & { name?: string } {
  const [typeText = '', ...parts] = text.split(':');
  const type = typeText.trim().toLowerCase().replace('_', '-') as ToxicType;
  if (!TOXIC_TYPES.includes(type))
    throw bad(text, `unknown type "${typeText}"; types: ${TOXIC_TYPES.join(', ')}`);
  let stream: ToxicStream = 'both';
  let toxicity = 1;
  let name: string | undefined;
  const attributes: Record<string, number> = {};
  const specs = ATTRIBUTES[type];
  let positional = 0;
  for (const part of parts) {
    if (part === '') continue;
    if (part === 'up' || part === 'down' || part === 'both') {
      stream = part;
      continue;
    }
    const eq = part.indexOf('=');
    const key = eq < 0 ? undefined : part.slice(0, eq);
    const value = eq < 0 ? part : part.slice(eq + 1);
    if (key === 'name') {
      name = value;
    } else if (key === 'p' || key === 'toxicity' || (key === undefined && specs.length === 0)) {
      toxicity = parseProbability(value, text);
    } else {
      const spec = key === undefined ? specs[positional++] : specs.find((candidate) => candidate.key === key);
      if (!spec) {
        throw bad(
          text,
          key === undefined
            ? 'too many values'
            : `${type} has no "${key}"; it takes ${[...specs.map((s) => s.key), 'p', 'name'].join(', ')}`,
        );
      }
      attributes[spec.key] = parseUnit(value, spec.unit, text);
    }
  }
  return { ...(name ? { name } : {}), type, stream, toxicity, attributes };
}

function parseProbability(value: string, text: string): number {
  const percent = value.endsWith('%');
  const number = Number(percent ? value.slice(0, -1) : value);
  const p = percent ? number / 100 : number;
  if (!Number.isFinite(p) || p < 0 || p > 1) throw bad(text, `probability "${value}" is not 0-1 or 0-100%`);
  return p;
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1000,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 2 ** 20,
  gib: 2 ** 30,
};

function parseUnit(value: string, unit: Unit, text: string): number {
  if (unit === 'ms') {
    try {
      return parseDuration(value, 'toxic');
    } catch {
      throw bad(text, `"${value}" is not a time such as 200ms or 2s`);
    }
  }
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)(\/s)?$/i.exec(value.trim());
  const scale = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || scale === undefined) throw bad(text, `"${value}" is not a size such as 64, 16KiB or 1MB`);
  return Math.round(Number(match[1]) * scale);
}

/** Checks a toxic (from a flag or the control API) and fills in defaults; throws USAGE. */
export function normalizeToxic(input: unknown, datagrams: boolean): Omit<Toxic, 'name'> & { name?: string } {
  const raw = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const text = JSON.stringify(input);
  const type = String(raw.type ?? '').replace('_', '-') as ToxicType;
  if (!TOXIC_TYPES.includes(type)) throw bad(text, `unknown type "${String(raw.type)}"`);
  if (datagrams && !DATAGRAM_TOXICS.includes(type)) {
    throw bad(text, `${type} acts on streams; udp:// takes ${DATAGRAM_TOXICS.join(', ')}`);
  }
  if (!datagrams && DATAGRAM_ONLY.includes(type)) throw bad(text, `${type} acts on datagrams (udp://)`);
  const stream = raw.stream ?? 'both';
  if (stream !== 'up' && stream !== 'down' && stream !== 'both')
    throw bad(text, 'stream is up, down or both');
  const toxicity = raw.toxicity ?? 1;
  if (typeof toxicity !== 'number' || !(toxicity >= 0 && toxicity <= 1)) throw bad(text, 'toxicity is 0-1');
  const given = (
    typeof raw.attributes === 'object' && raw.attributes !== null ? raw.attributes : {}
  ) as Record<string, unknown>;
  const attributes: Record<string, number> = {};
  for (const spec of ATTRIBUTES[type]) {
    const value = given[spec.key] ?? spec.default;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw bad(text, `${spec.key} must be a number of ${spec.unit === 'ms' ? 'milliseconds' : 'bytes'}`);
    }
    attributes[spec.key] = value;
  }
  for (const key of Object.keys(given)) {
    if (!(key in attributes)) throw bad(text, `${type} has no attribute "${key}"`);
  }
  if (type === 'bandwidth' && attributes.rate === 0) throw bad(text, 'rate must be above 0');
  if (type === 'slicer' && attributes.size === 0) throw bad(text, 'size must be above 0');
  const name = raw.name;
  if (name !== undefined && (typeof name !== 'string' || !/^[\w.-]{1,64}$/.test(name))) {
    throw bad(text, 'name is 1-64 letters, digits, _ . -');
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
