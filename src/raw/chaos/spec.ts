import { parseDuration } from '../../options.js';
import {
  badToxic,
  defaultToxicity,
  MAX_TOXIC_MS,
  overLongestWait,
  TOXIC_ATTRIBUTES,
  TOXIC_TYPES,
  type Toxic,
  type ToxicStream,
  type ToxicType,
} from './toxics.js';

/**
 * Parses `--toxic TYPE[:STREAM][:VALUE][:key=value…]`: `latency:down:200ms:jitter=50ms`,
 * `bandwidth:up:100KB`, `slicer:both:16:delay=1ms`, `limit-data:down:1000`, `timeout:both:2s`,
 * `reset-peer::500ms`, `slow-close:down:1s`, `loss:up:30%`, `reorder:up:20%:delay=20ms`. A bare
 * value ending in `%` is the toxicity on every type (`p=` says the same); any other bare value
 * sets the type's first attribute, or the toxicity for loss and duplicate, which have none.
 * `name=` names it. The result still goes through `ToxicSet.add`, which checks the rest.
 */
export function parseToxicSpec(text: string): Omit<Toxic, 'name'> & { name?: string } {
  const [typeText = '', ...parts] = text.split(':');
  const type = typeText.trim().toLowerCase().replace('_', '-') as ToxicType;
  if (!TOXIC_TYPES.includes(type))
    throw badToxic(text, `unknown type "${typeText}"; types: ${TOXIC_TYPES.join(', ')}`);
  let stream: ToxicStream = 'both';
  let toxicity: number | undefined;
  let name: string | undefined;
  const attributes: Record<string, number> = {};
  const specs = TOXIC_ATTRIBUTES[type];
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
    } else if (
      key === 'p' ||
      key === 'toxicity' ||
      (key === undefined && (value.endsWith('%') || specs.length === 0))
    ) {
      toxicity = parseProbability(value, text);
    } else {
      const spec = key === undefined ? specs[positional++] : specs.find((candidate) => candidate.key === key);
      if (!spec) {
        throw badToxic(
          text,
          key === undefined
            ? 'too many values'
            : `${type} has no "${key}"; it takes ${[...specs.map((s) => s.key), 'p', 'name'].join(', ')}`,
        );
      }
      attributes[spec.key] = parseUnit(value, spec.unit, text);
    }
  }
  return { ...(name ? { name } : {}), type, stream, toxicity: toxicity ?? defaultToxicity(type), attributes };
}

function parseProbability(value: string, text: string): number {
  const percent = value.endsWith('%');
  const number = Number(percent ? value.slice(0, -1) : value);
  const p = percent ? number / 100 : number;
  if (!Number.isFinite(p) || p < 0 || p > 1)
    throw badToxic(text, `probability "${value}" is not 0-1 or 0-100%`);
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

function parseUnit(value: string, unit: 'ms' | 'bytes' | 'rate', text: string): number {
  if (unit === 'ms') {
    let ms: number;
    try {
      ms = parseDuration(value, 'toxic');
    } catch {
      throw badToxic(text, `"${value}" is not a time such as 200ms or 2s`);
    }
    // Node's timers hold 2^31-1 ms; a longer wait would fire at once instead.
    if (ms > MAX_TOXIC_MS) throw overLongestWait(text, `"${value}"`);
    return ms;
  }
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)(\/s)?$/i.exec(value.trim());
  const scale = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || scale === undefined)
    throw badToxic(text, `"${value}" is not a size such as 64, 16KiB or 1MB`);
  return Math.round(Number(match[1]) * scale);
}
