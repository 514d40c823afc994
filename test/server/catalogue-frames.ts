/**
 * Hostile frames generated from the frame catalogue: for every field of every frame type a
 * client may send, values at and past its bounds and of the wrong type, the field missing, and
 * the whole header with extra fields. What the server must answer each with is the documented
 * rule (docs/protocol.md section 6), so the fuzz test can check every answer.
 */
import { CATALOGUE, type CatalogueEntry } from '../../src/protocol/catalogue.js';
import type { FieldSpec } from '../../src/protocol/schema.js';

/** A header that breaks its declaration in one way, and what was done to it. */
export interface HostileHeader {
  readonly what: string;
  readonly header: Record<string, unknown>;
}

/** Fields past this many characters cannot fit a 64 KiB header: the framing refuses them first. */
const HEADER_BUDGET = 60_000;

/**
 * A valid header for frames whose rule needs particular fields (one of argv/shell/login, a
 * target). Values chosen so that the request, if it ran, does nothing outside the test.
 */
const RULE_BASES: Record<string, Record<string, unknown>> = {
  exec: { argv: ['true'] },
  'tunnel-open': { host: '127.0.0.1', port: 9 },
  // A key of the right shape that no offer made: the attach is refused for it, not for its form.
  attach: { key: 'A'.repeat(43) },
};

/** The frame types a client sends (or both sides do), as declared. */
export function clientFrames(): CatalogueEntry[] {
  return [...CATALOGUE.entries()].filter((entry) => entry.spec.from !== 'server');
}

/** A header of `entry` that its validator accepts: required fields at their smallest valid values. */
export function validHeader(entry: CatalogueEntry): Record<string, unknown> {
  const header: Record<string, unknown> = { type: entry.type, ...RULE_BASES[entry.type] };
  for (const [name, field] of Object.entries(entry.spec.fields)) {
    if (!field.optional && header[name] === undefined) header[name] = validValue(field);
  }
  const problem = entry.validate(header);
  if (problem !== undefined) throw new Error(`no valid ${entry.type} could be built: ${problem}`);
  return header;
}

function validValue(field: FieldSpec): unknown {
  switch (field.kind) {
    case 'string':
      return field.pattern?.test('xterm') ? 'xterm' : 'a'.repeat(Math.max(field.min ?? 0, 1));
    case 'integer':
    case 'number':
      return Math.max(field.min, 0);
    case 'boolean':
      return true;
    case 'enum':
      return field.values[0];
    case 'strings':
      return Array.from({ length: field.minItems }, () => 'a');
    case 'record':
      return {};
    case 'object':
      return Object.fromEntries(
        Object.entries(field.fields).map(([name, inner]) => [name, validValue(inner)]),
      );
    case 'list':
      return [];
    case 'json':
      return {};
  }
}

/** Values of the wrong type for `field`: each must be refused. */
function wrongTypes(field: FieldSpec): unknown[] {
  const all: unknown[] = ['text', 42, 1.5, true, ['a'], { a: 'b' }];
  if (!field.nullable) all.push(null);
  return all.filter((value) => !fits(field, value));
}

/** Whether `value` has the JSON type `field` takes (bounds aside). */
function fits(field: FieldSpec, value: unknown): boolean {
  switch (field.kind) {
    case 'string':
    case 'enum':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'strings':
    case 'list':
      return Array.isArray(value) && value.every((item) => typeof item === 'string');
    case 'record':
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'json':
      return true;
  }
}

/** Values just past the bounds of `field` (and other invalid values of its own type). */
function pastBounds(field: FieldSpec): { what: string; value: unknown }[] {
  const out: { what: string; value: unknown }[] = [];
  switch (field.kind) {
    case 'string':
      if ((field.min ?? 0) > 0) out.push({ what: 'too short', value: 'a'.repeat(field.min! - 1) });
      if (field.max + 1 <= HEADER_BUDGET) out.push({ what: 'too long', value: 'a'.repeat(field.max + 1) });
      if (field.noNul) out.push({ what: 'a NUL', value: 'a\0b' });
      if (field.pattern && !field.pattern.test(' \u0001 '))
        out.push({ what: 'off pattern', value: ' \u0001 ' });
      break;
    case 'integer':
      out.push({ what: 'below min', value: field.min - 1 }, { what: 'above max', value: field.max + 1 });
      out.push({ what: 'a fraction', value: field.min + 0.5 });
      break;
    case 'number':
      out.push({ what: 'below min', value: field.min - 1 });
      if (field.max < Number.MAX_SAFE_INTEGER) out.push({ what: 'above max', value: field.max + 1 });
      break;
    case 'boolean':
      if (field.onlyTrue) out.push({ what: 'false where only true is', value: false });
      break;
    case 'enum':
      out.push({ what: 'not one of the values', value: 'NOT-A-VALUE' });
      break;
    case 'strings':
      if (field.minItems > 0) out.push({ what: 'too few items', value: [] });
      if (field.maxItems + 1 <= HEADER_BUDGET / 4)
        out.push({ what: 'too many items', value: Array.from({ length: field.maxItems + 1 }, () => 'a') });
      if (field.itemMax + 1 <= HEADER_BUDGET)
        out.push({ what: 'an item too long', value: ['a'.repeat(field.itemMax + 1)] });
      out.push({ what: 'a non-string item', value: ['a', 7] });
      if (field.noNul) out.push({ what: 'a NUL item', value: ['a\0'] });
      break;
    case 'record':
      out.push(
        { what: 'a bad name', value: { 'A=B': 'x' } },
        { what: 'a non-string value', value: { A: 1 } },
      );
      if (field.noNul) out.push({ what: 'a NUL value', value: { A: 'a\0' } });
      break;
    case 'object':
      for (const [name, inner] of Object.entries(field.fields)) {
        const valid = validValue(field) as Record<string, unknown>;
        for (const bad of [...pastBounds(inner).map((b) => b.value), ...wrongTypes(inner)]) {
          out.push({
            what: `.${name} = ${JSON.stringify(bad)?.slice(0, 20)}`,
            value: { ...valid, [name]: bad },
          });
        }
        if (!inner.optional) {
          const { [name]: _dropped, ...rest } = valid;
          out.push({ what: `.${name} missing`, value: rest });
        }
      }
      break;
    case 'list':
    case 'json':
      break;
  }
  return out;
}

/** Every way of breaking one field of `entry`'s valid header, each a header of its own. */
export function hostileHeaders(entry: CatalogueEntry): HostileHeader[] {
  const base = validHeader(entry);
  const out: HostileHeader[] = [];
  for (const [name, field] of Object.entries(entry.spec.fields)) {
    for (const { what, value } of pastBounds(field)) {
      out.push({ what: `${name}: ${what}`, header: { ...base, [name]: value } });
    }
    for (const value of wrongTypes(field)) {
      out.push({ what: `${name}: wrong type ${JSON.stringify(value)}`, header: { ...base, [name]: value } });
    }
    if (!field.optional) {
      const { [name]: _dropped, ...rest } = base;
      out.push({ what: `${name}: missing`, header: rest });
    }
  }
  // Only the ones the declaration really refuses (a rule-bearing frame may refuse more).
  return out.filter(({ header }) => entry.validate(header) !== undefined);
}

/** The valid header with fields nobody declared: accepted, the extras ignored. */
export function withExtraFields(entry: CatalogueEntry): Record<string, unknown> {
  return { ...validHeader(entry), zzz: 1, extra: { nested: ['x'] }, ['__proto__']: { polluted: true } };
}
