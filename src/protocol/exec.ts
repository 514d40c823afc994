/** What both ends of the exec service agree on (PROTOCOL section 4, "exec"). */
import { declareFrames } from './schema.js';
import { CHANNEL_KEY_FIELD } from './session.js';

/** Signals a client may forward to a running command with a `signal` frame. */
export const EXEC_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL'] as const;

export type ExecSignal = (typeof EXEC_SIGNALS)[number];

/** Whether `name` is a signal the exec service forwards. */
export function isExecSignal(name: unknown): name is ExecSignal {
  return (EXEC_SIGNALS as readonly unknown[]).includes(name);
}

/** Longest argument or shell string (Linux MAX_ARG_STRLEN). */
const MAX_ARG_CHARS = 128 * 1024;
/** Most arguments one request may pass. */
const MAX_ARGS = 4096;
/** A terminal window dimension: what the kernel's winsize holds. */
const WINDOW_DIMENSION = { kind: 'integer', min: 1, max: 65535 } as const;
/** A TERM value: a terminfo name, nothing a shell or terminfo lookup could trip over. */
const TERM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
/**
 * How long a terminal's offered data channel waits for its `attach` (or a `channel-decline`)
 * before the output goes in band after all; the command's output waits meanwhile.
 */
export const CHANNEL_ATTACH_MS = 10_000;
/**
 * How long a client waits for the server's answer to its `attach`: longer than the server's
 * deadline, which began earlier, so that the server's verdict (`attached`, or a refusal once it
 * gave up) always reaches the client before the client gives up on its own.
 */
export const CHANNEL_JOIN_WAIT_MS = 2 * CHANNEL_ATTACH_MS;
/** Largest body of a `stdin` frame. */
export const EXEC_STDIN_FRAME_BYTES = 1024 * 1024;

/** The exec service's frames, declared once (docs/exec.md). */
export const EXEC_FRAMES = declareFrames({
  exec: {
    service: 'exec',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    followUps: ['stdin', 'stdin-end', 'signal', 'resize', 'channel-decline'],
    replies: ['channel', 'started', 'stdout', 'stderr', 'exit'],
    final: ['exit'],
    doc: 'runs a command: `argv`, `shell` or `login`, exactly one',
    ruleDoc: 'exactly one of `argv`, `shell`, `login`; `argv[0]` not empty',
    rule: (header) => {
      const given = [header.argv, header.shell, header.login].filter((field) => field !== undefined);
      if (given.length !== 1) {
        return 'an exec request needs exactly one of "argv" (a list of strings), "shell" (a string) and "login" (true)';
      }
      const argv = header.argv as string[] | undefined;
      return argv !== undefined && argv[0] === '' ? '"argv[0]" (the program) must not be empty' : undefined;
    },
    fields: {
      argv: {
        kind: 'strings',
        minItems: 1,
        maxItems: MAX_ARGS,
        itemMax: MAX_ARG_CHARS,
        noNul: true,
        optional: true,
        message: '"argv" must be a non-empty list of strings without NUL bytes',
      },
      shell: {
        kind: 'string',
        min: 1,
        max: MAX_ARG_CHARS,
        noNul: true,
        optional: true,
        message: '"shell" must be a non-empty string without NUL bytes',
      },
      login: {
        kind: 'boolean',
        onlyTrue: true,
        optional: true,
        message: '"login" must be true when present',
      },
      cwd: {
        kind: 'string',
        min: 1,
        max: 4096,
        noNul: true,
        optional: true,
        message: '"cwd" must be a non-empty path',
      },
      env: {
        kind: 'record',
        maxKeys: 1024,
        keyPattern: /^[^=\0]+$/,
        valueMax: MAX_ARG_CHARS,
        noNul: true,
        optional: true,
        message: '"env" must be an object of strings (names without "=" or NUL)',
      },
      timeoutMs: {
        kind: 'integer',
        min: 0,
        max: Number.MAX_SAFE_INTEGER,
        optional: true,
        message: '"timeoutMs" must be a whole number of milliseconds (0 = the server maximum)',
      },
      stdin: { kind: 'boolean', optional: true, message: '"stdin" must be true or false' },
      channel: {
        kind: 'boolean',
        optional: true,
        message: '"channel" must be true or false',
        doc: 'with `pty`: the client can carry the terminal bytes over a data channel',
      },
      pty: {
        kind: 'object',
        optional: true,
        fields: {
          term: {
            kind: 'string',
            max: 64,
            pattern: TERM_PATTERN,
            message: '"pty.term" must be a terminal name like xterm-256color',
          },
          rows: WINDOW_DIMENSION,
          cols: WINDOW_DIMENSION,
        },
      },
    },
  },
  channel: {
    service: 'exec',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'a data channel waits: open a connection whose first frame is `attach` with `key`',
    fields: {
      key: CHANNEL_KEY_FIELD,
    },
  },
  started: {
    service: 'exec',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'the command runs; `timeoutMs` is the effective timeout after the server cap',
    fields: {
      pid: { kind: 'integer', min: 0, max: 2 ** 32, optional: true },
      timeoutMs: { kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER, optional: true },
    },
  },
  stdout: {
    service: 'exec',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 'max',
    doc: 'output bytes (a terminal session sends all its output here)',
    fields: {},
  },
  stderr: {
    service: 'exec',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 'max',
    doc: 'error output bytes',
    fields: {},
  },
  exit: {
    service: 'exec',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: how the command ended',
    fields: {
      code: { kind: 'integer', min: -(2 ** 31), max: 2 ** 31, nullable: true, optional: true },
      signal: { kind: 'string', max: 32, nullable: true, optional: true },
      timedOut: { kind: 'boolean', optional: true },
      truncated: { kind: 'boolean', optional: true },
      durationMs: { kind: 'number', min: 0, max: Number.MAX_SAFE_INTEGER, optional: true },
    },
  },
  stdin: {
    service: 'exec',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: EXEC_STDIN_FRAME_BYTES,
    phases: ['authenticated'],
    doc: 'input bytes (keystrokes for a terminal); dropped unless the request said `stdin`',
    fields: {},
  },
  'stdin-end': {
    service: 'exec',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'no more input: the command reads end of file',
    fields: {},
  },
  signal: {
    service: 'exec',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'forwards a signal to the command process group',
    fields: {
      signal: {
        kind: 'enum',
        values: EXEC_SIGNALS,
        message: `"signal" must be one of ${EXEC_SIGNALS.join(', ')}`,
      },
    },
  },
  'channel-decline': {
    service: 'exec',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'the client will not attach the offered channel: the output comes in band',
    fields: {},
  },
  resize: {
    service: 'exec',
    role: 'follow-up',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['authenticated'],
    doc: 'the terminal window changed size',
    fields: {
      rows: { ...WINDOW_DIMENSION, message: '"rows" and "cols" must be whole numbers 1..65535' },
      cols: { ...WINDOW_DIMENSION, message: '"rows" and "cols" must be whole numbers 1..65535' },
    },
  },
});
