/** Helpers for the terminal tests: reading a pty's output, and a real terminal driven through tmux. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { CLI, tempDir } from '../helpers.js';

const run = promisify(execFile);

/**
 * Collects all text a stream produces, from the moment it is made: `until(pattern)` resolves
 * with the text so far once `pattern` matches it (nothing is lost between waits), and rejects
 * if the stream ends first.
 */
export class TextReader {
  text = '';
  #ended = false;
  readonly #waiters = new Set<() => void>();

  constructor(stream: Readable) {
    stream.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('utf8');
      for (const wake of this.#waiters) wake();
    });
    stream.once('end', () => {
      this.#ended = true;
      for (const wake of this.#waiters) wake();
    });
  }

  until(pattern: RegExp): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(this.text)) {
          this.#waiters.delete(check);
          resolve(this.text);
        } else if (this.#ended) {
          this.#waiters.delete(check);
          reject(new Error(`ended before ${pattern}; got ${JSON.stringify(this.text)}`));
        }
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Resolves with all the text once the stream has ended. */
  all(): Promise<string> {
    return this.until(/$^/).catch(() => this.text);
  }
}

/**
 * A tmux server on a private socket with one detached session of `rows` x `cols`: a real
 * terminal for the CLI. Steps are synchronised with `tmux wait-for` channels that the commands
 * in the terminal signal (`tmux -S SOCKET wait-for -S NAME`), not with sleeps.
 */
export interface Tmux {
  /** The tmux command prefix for a shell command line inside the terminal. */
  readonly tmux: string;
  /** A scratch directory for files the terminal's commands write. */
  readonly dir: string;
  /** Types `text` (tmux key names allowed with `literal: false`). */
  keys(text: string, options?: { literal?: boolean; enter?: boolean }): Promise<void>;
  /** Waits until something in the terminal ran `wait-for -S name` (bounded by the test's timeout). */
  waitFor(name: string): Promise<void>;
  /**
   * Signals channel `name` once the terminal's output from now on holds `text` (letters,
   * digits and spaces): for programs that cannot signal themselves (a pager).
   */
  onOutput(text: string, name: string): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  /** The visible screen as text. */
  screen(): Promise<string>;
  /** `stty -a` of the pane's terminal, read from outside it. */
  paneModes(): Promise<string>;
  kill(): Promise<void>;
}

/**
 * Starts tmux running `command(tmux, dir)` (a shell command line; `tmux` is the command prefix
 * for this server, `dir` the scratch directory) in a fresh session of 80x24, with `env` added
 * to the environment and HOME in the scratch directory.
 */
export async function startTmux(
  command: (tmux: string, dir: string) => string,
  env: NodeJS.ProcessEnv = {},
): Promise<Tmux> {
  const scratch = await tempDir('sockit-tmux-');
  const socket = join(scratch.path, 'tmux.sock');
  const prefix = `tmux -S ${socket}`;
  const options = {
    timeout: 20_000,
    env: { ...process.env, HOME: scratch.path, TERM: 'xterm-256color', SOCKIT_TOKEN: '', ...env },
  };
  const tmux = (...args: string[]) => run('tmux', ['-S', socket, ...args], options);
  await tmux('-f', '/dev/null', 'new-session', '-d', '-x', '80', '-y', '24', command(prefix, scratch.path));
  return {
    tmux: prefix,
    dir: scratch.path,
    async keys(text, options = {}) {
      await tmux('send-keys', ...(options.literal === false ? [] : ['-l']), text);
      if (options.enter !== false && options.literal !== false) await tmux('send-keys', 'Enter');
    },
    async waitFor(name) {
      await tmux('wait-for', name);
    },
    async onOutput(text, name) {
      if (!/^[\w ]+$/.test(text)) throw new Error(`onOutput takes letters, digits and spaces, got ${text}`);
      // tmux copies the pane's output into the command, which signals at the first match. Not
      // grep: a prompt is a last line without a newline, which grep would never see.
      await tmux(
        'pipe-pane',
        `${process.execPath} -e '${SIGNAL_ON_TEXT}' '${text}' ${prefix} wait-for -S ${name}`,
      );
    },
    async resize(cols, rows) {
      await tmux('resize-window', '-x', String(cols), '-y', String(rows));
    },
    async screen() {
      return (await tmux('capture-pane', '-p')).stdout;
    },
    async paneModes() {
      const tty = (await tmux('display-message', '-p', '#{pane_tty}')).stdout.trim();
      return (await run('stty', ['-F', tty, '-a'], options)).stdout;
    },
    async kill() {
      await tmux('kill-server').catch(() => {}); // already gone when its last session ended
      await scratch.cleanup();
    },
  };
}

/**
 * `node -e` script for Tmux.onOutput: reads the pane's output and, once it holds argv[1] (in
 * one piece: the last 4 KiB are kept across reads), runs the command in the rest of argv.
 */
const SIGNAL_ON_TEXT = [
  'const [text, command, ...args] = process.argv.slice(1);',
  'let seen = "";',
  'process.stdin.on("data", (chunk) => {',
  '  seen = (seen + chunk).slice(-4096);',
  '  if (!seen.includes(text)) return;',
  '  require("node:child_process").execFileSync(command, args);',
  '  process.exit(0);',
  '});',
].join(' ');

/** `node CLI ARGS…` as a shell command line (arguments must not need quoting). */
export function cliLine(args: string[]): string {
  return [process.execPath, CLI, ...args].join(' ');
}
