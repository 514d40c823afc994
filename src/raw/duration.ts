import { SockitError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a netcat-style time: a bare number is seconds (`-w 5`, `-i 0.5`), or a number with a
 * unit: `250ms`, `10s`, `2m`, `1h`. Returns milliseconds.
 */
export function parseDuration(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    throw new SockitError(
      'USAGE',
      `${option} takes a time such as 5 (seconds), 500ms, 10s or 2m; got "${text}"`,
    );
  }
  return Math.round(Number(match[1]) * UNITS[match[2] ?? 's']!);
}
