/**
 * The one place option values are checked, for the CLI and the library alike. The `parse…`
 * functions read CLI text (commander calls them through `.argParser`); the `check…` functions
 * validate values a library caller passed. Both throw INVALID_OPTION naming the option, so a
 * bad value reads the same whichever way it came in; the CLI exits 2 for it.
 */
import { invalidOption } from './errors.js';

const DECIMAL = /^\d+$/;

/**
 * A whole decimal number >= `min` (default 0), blanks around it ignored. `''`, `0x10`, `1e3`,
 * `1.5`, `-1` are refused: `Number()` would take the first three.
 */
export function parseInteger(text: string, name: string, min = 0): number {
  const trimmed = text.trim();
  const value = DECIMAL.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isSafeInteger(value)) {
    throw invalidOption(`${name} takes a whole number${min > 0 ? ` of at least ${min}` : ''}; got "${text}"`);
  }
  if (value < min) throw invalidOption(`${name} must be at least ${min}; got ${value}`);
  return value;
}

/** A whole number of at least 1: a count, a connection cap. */
export function parsePositiveInteger(text: string, name: string): number {
  return parseInteger(text, name, 1);
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/**
 * A byte size: `1048576`, `64K`, `10M`, `2G`, `1T`; units are binary, `KiB`/`KB`/`kb` mean
 * the same as `K`. Returns bytes.
 */
export function parseByteSize(text: string, name: string): number {
  const match = /^(\d+)\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  if (!match) {
    throw invalidOption(`${name} takes a byte size such as 1048576, 64K, 10M or 2G; got "${text}"`);
  }
  const bytes = Number(match[1]) * BYTE_UNITS[(match[2] ?? '').toLowerCase()]!;
  if (!Number.isSafeInteger(bytes)) throw invalidOption(`${name} is too large: "${text}"`);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration, as ssh, curl and timeout(1) take it: a bare number is seconds (`5`, `0.5`), or
 * a number with a unit: `500ms`, `10s`, `2m`, `1h`. Returns milliseconds (the library's unit).
 */
export function parseDuration(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    throw invalidOption(
      `${name} takes a duration such as 5s, 500ms, 2m or 1h (a bare number is seconds); got "${text}"`,
    );
  }
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 's']!);
}

/** One of a fixed list of words (`--log-level`, `--echo`); the error names them all. */
export function parseChoice<T extends string>(text: string, name: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  throw invalidOption(`${name} must be one of ${choices.join(', ')}; got "${text}"`);
}

/** A comma-separated list whose every item is one of `choices` (`--open echo,chat`). */
export function parseChoiceList<T extends string>(text: string, name: string, choices: readonly T[]): T[] {
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!(choices as readonly string[]).includes(item)) {
      throw invalidOption(`${name}: unknown "${item}" (choose from ${choices.join(', ')})`);
    }
  }
  return items as T[];
}

/** Library check: `value` is a whole number >= `min`, else INVALID_OPTION naming `name`. */
export function checkInteger(value: unknown, name: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalidOption(`${name} must be a whole number >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Library check: `value` is one of `choices`, else INVALID_OPTION naming them. */
export function checkChoice<T extends string>(value: unknown, name: string, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw invalidOption(
    `${name} must be one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${JSON.stringify(value)}`,
  );
}

/** Commander `.argParser` adapters: `(text) => value`, naming the flag in the error. */
export const argParsers = {
  integer:
    (name: string, min = 0) =>
    (text: string) =>
      parseInteger(text, name, min),
  positive: (name: string) => (text: string) => parsePositiveInteger(text, name),
  bytes: (name: string) => (text: string) => parseByteSize(text, name),
  duration: (name: string) => (text: string) => parseDuration(text, name),
  choice:
    <T extends string>(name: string, choices: readonly T[]) =>
    (text: string) =>
      parseChoice(text, name, choices),
};
