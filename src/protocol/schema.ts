/**
 * The language frame declarations are written in (as mqtt-packet declares its packets): each
 * frame type's service, role, fields with their types and bounds, follow-ups, replies, body
 * limit and connection phases, as plain data. `compileFrame` turns one declaration into its
 * validator; `HeaderOf` turns it into the header's TypeScript type. No I/O here.
 */

/** How far a connection is in its handshake: what a frame may be and how large its body. */
export type TrustPhase = 'handshake' | 'anonymous' | 'authenticated';

/** Every phase, in handshake order. */
export const TRUST_PHASES: readonly TrustPhase[] = ['handshake', 'anonymous', 'authenticated'];

/** A field's declaration. `optional` fields may be absent; `nullable` ones may be `null`. */
export type FieldSpec =
  | (FieldBase & {
      kind: 'string';
      /** Characters, inclusive. */
      min?: number;
      max: number;
      pattern?: RegExp;
      /** NUL bytes refused (paths, argv, environment). */
      noNul?: boolean;
    })
  | (FieldBase & { kind: 'integer'; min: number; max: number })
  | (FieldBase & { kind: 'number'; min: number; max: number })
  | (FieldBase & { kind: 'boolean' /** Only `true` is accepted (a flag). */; onlyTrue?: boolean })
  | (FieldBase & { kind: 'enum'; values: readonly string[] })
  | (FieldBase & {
      kind: 'strings';
      minItems: number;
      maxItems: number;
      /** Longest item, in characters. */
      itemMax: number;
      noNul?: boolean;
    })
  | (FieldBase & {
      kind: 'record';
      maxKeys: number;
      keyPattern: RegExp;
      valueMax: number;
      noNul?: boolean;
    })
  | (FieldBase & { kind: 'object'; fields: Readonly<Record<string, FieldSpec>> })
  /** A list whose items the receiver reads itself (directory entries). */
  | (FieldBase & { kind: 'list'; maxItems: number })
  /** Any JSON value (an entry object, an error's extra detail). */
  | (FieldBase & { kind: 'json' });

interface FieldBase {
  optional?: boolean;
  nullable?: boolean;
  /** The error message when the field is wrong; default: one built from the declaration. */
  message?: string;
  /** For the docs table: what the field means, when its name does not say it. */
  doc?: string;
}

/**
 * What a frame is: `request` opens one (carries a fresh `id`), `follow-up` belongs to an open
 * request (client → server), `reply` answers one (server → client), `message` has no id
 * (chat `say`, `message`), `session` is the handshake and connection control.
 */
export type FrameRole = 'request' | 'follow-up' | 'reply' | 'message' | 'session';

/** Who sends a frame type. */
export type FrameSender = 'client' | 'server' | 'both';

/** One frame type, declared once for client, server, docs and fuzzers. */
export interface FrameSpec {
  /** The service it belongs to (`session` for the handshake and connection control). */
  readonly service: string;
  readonly role: FrameRole;
  readonly from: FrameSender;
  /** Whether `id` is required, forbidden, or either (an `error` with or without a request). */
  readonly id: 'required' | 'none' | 'optional';
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /**
   * Largest body in bytes: 0 = none allowed, `'max'` = the receiver's `maxBodyBytes` (and the
   * phase's limit). Checked before a byte of the body is buffered.
   */
  readonly body: number | 'max';
  /** Phases in which the server accepts it (client-sent frames only). */
  readonly phases?: readonly TrustPhase[];
  /** Requests: the client frames that may follow it with its id. */
  readonly followUps?: readonly string[];
  /** Requests: the server frames that answer it (`error` always may, and is always final). */
  readonly replies?: readonly string[];
  /** Requests: which of `replies` end it. */
  readonly final?: readonly string[];
  /**
   * Checks across fields (exactly one of argv/shell/login): the message of the first broken
   * rule, or undefined. Only for what a field declaration cannot say.
   */
  readonly rule?: (header: Readonly<Record<string, unknown>>) => string | undefined;
  /** For the docs: the cross-field rule in words. */
  readonly ruleDoc?: string;
  /** The error code a malformed frame gets. Default BAD_REQUEST. */
  readonly invalidCode?: 'BAD_REQUEST' | 'UNSUPPORTED' | 'AUTH_FAILED';
  /** One line for the docs table. */
  readonly doc: string;
}

/** A service's declarations: frame type → spec. */
export type FrameDeclarations = Readonly<Record<string, FrameSpec>>;

/** Declares a service's frames, keeping their literal types for `HeaderOf`. */
export function declareFrames<const T extends FrameDeclarations>(frames: T): T {
  return frames;
}

// ---- types from declarations ------------------------------------------------------------

type ValueOf<F> = F extends { kind: 'string' }
  ? string
  : F extends { kind: 'integer' | 'number' }
    ? number
    : F extends { kind: 'boolean' }
      ? boolean
      : F extends { kind: 'enum'; values: readonly (infer V)[] }
        ? V
        : F extends { kind: 'strings' }
          ? string[]
          : F extends { kind: 'record' }
            ? Record<string, string>
            : F extends { kind: 'object'; fields: infer S }
              ? FieldsOf<S>
              : F extends { kind: 'list' }
                ? unknown[]
                : unknown;

type WithNull<F> = F extends { nullable: true } ? ValueOf<F> | null : ValueOf<F>;
type RequiredKeys<S> = { [K in keyof S]: S[K] extends { optional: true } ? never : K }[keyof S];
type OptionalKeys<S> = { [K in keyof S]: S[K] extends { optional: true } ? K : never }[keyof S];

/** The fields a declaration describes, with their TypeScript types. */
export type FieldsOf<S> = { [K in RequiredKeys<S>]: WithNull<S[K]> } & {
  [K in OptionalKeys<S>]?: WithNull<S[K]>;
};

/** The header type of frame type `T` declared by `S`: what a validated header looks like. */
export type HeaderOf<T extends string, S> = { type: T; id?: number; size?: number } & (S extends {
  fields: infer F;
}
  ? FieldsOf<F>
  : unknown);

/** The discriminated union of every header a set of declarations describes. */
export type HeadersOf<D> = { [T in keyof D & string]: HeaderOf<T, D[T]> }[keyof D & string];

// ---- validation ---------------------------------------------------------------------------

/** Checks one header against its declaration: the message of what is wrong, or undefined. */
export type HeaderValidator = (header: Readonly<Record<string, unknown>>) => string | undefined;

/** Builds the validator of one frame type from its declaration (once, at load). */
export function compileFrame(type: string, spec: FrameSpec): HeaderValidator {
  const checks = Object.entries(spec.fields).map(([name, field]) => compileField(`"${name}"`, name, field));
  const { rule } = spec;
  if (checks.length === 0 && rule === undefined) return () => undefined;
  return (header) => {
    for (const check of checks) {
      const problem = check(header);
      if (problem !== undefined) return `${type}: ${problem}`;
    }
    const broken = rule?.(header);
    return broken === undefined ? undefined : `${type}: ${broken}`;
  };
}

type FieldCheck = (holder: Readonly<Record<string, unknown>>) => string | undefined;

function compileField(label: string, name: string, field: FieldSpec): FieldCheck {
  const wrong = field.message ?? `${label} must be ${describeField(field)}`;
  const valid = valueCheck(label, field);
  return (holder) => {
    const value = holder[name];
    if (value === undefined)
      return field.optional ? undefined : (field.message ?? `${label} is required (${describeField(field)})`);
    if (value === null) return field.nullable ? undefined : wrong;
    const nested = valid(value);
    if (nested === false) return wrong;
    return typeof nested === 'string' ? nested : undefined;
  };
}

/** true: valid; false: wrong (the field's message); a string: a nested field's message. */
function valueCheck(label: string, field: FieldSpec): (value: unknown) => boolean | string {
  switch (field.kind) {
    case 'string':
      return (value) =>
        typeof value === 'string' &&
        value.length >= (field.min ?? 0) &&
        value.length <= field.max &&
        !(field.noNul && value.includes('\0')) &&
        (field.pattern === undefined || field.pattern.test(value));
    case 'integer':
      return (value) =>
        Number.isInteger(value) && (value as number) >= field.min && (value as number) <= field.max;
    case 'number':
      return (value) =>
        typeof value === 'number' && Number.isFinite(value) && value >= field.min && value <= field.max;
    case 'boolean':
      return (value) => (field.onlyTrue ? value === true : typeof value === 'boolean');
    case 'enum':
      return (value) => typeof value === 'string' && field.values.includes(value);
    case 'strings':
      return (value) =>
        Array.isArray(value) &&
        value.length >= field.minItems &&
        value.length <= field.maxItems &&
        value.every(
          (item) =>
            typeof item === 'string' && item.length <= field.itemMax && !(field.noNul && item.includes('\0')),
        );
    case 'record':
      return (value) =>
        isPlainObject(value) &&
        Object.keys(value).length <= field.maxKeys &&
        Object.entries(value).every(
          ([key, item]) =>
            field.keyPattern.test(key) &&
            typeof item === 'string' &&
            item.length <= field.valueMax &&
            !(field.noNul && item.includes('\0')),
        );
    case 'object': {
      const checks = Object.entries(field.fields).map(([name, inner]) =>
        compileField(`"${label.slice(1, -1)}.${name}"`, name, inner),
      );
      return (value) => {
        if (!isPlainObject(value)) return false;
        for (const check of checks) {
          const problem = check(value);
          if (problem !== undefined) return field.message ?? problem;
        }
        return true;
      };
    }
    case 'list':
      return (value) => Array.isArray(value) && value.length <= field.maxItems;
    case 'json':
      return () => true;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A field's type and bounds in words, for error messages and the docs table. */
export function describeField(field: FieldSpec): string {
  switch (field.kind) {
    case 'string':
      return `a string of ${field.min === field.max ? field.max : `${field.min ?? 0}-${field.max}`} characters${field.noNul ? ' without NUL' : ''}${
        field.pattern ? ` matching ${field.pattern.source}` : ''
      }`;
    case 'integer':
      return `a whole number ${field.min}..${field.max}`;
    case 'number':
      return `a number ${field.min}..${field.max}`;
    case 'boolean':
      return field.onlyTrue ? 'true' : 'true or false';
    case 'enum':
      return `one of ${field.values.join(', ')}`;
    case 'strings':
      return `a list of ${field.minItems}-${field.maxItems} strings of at most ${field.itemMax} characters${
        field.noNul ? ' without NUL' : ''
      }`;
    case 'record':
      return `an object of at most ${field.maxKeys} strings of at most ${field.valueMax} characters, names matching ${field.keyPattern.source}`;
    case 'object':
      return `{ ${Object.keys(field.fields).join(', ')} }`;
    case 'list':
      return `a list of at most ${field.maxItems} items`;
    case 'json':
      return 'any JSON value';
  }
}
