import { createInterface, type Interface } from 'node:readline';
import { EXIT } from './common.js';

/** Lines that end an interactive session, as in the tutorials' `>>:` loops. */
const QUIT_WORDS = new Set(['exit', 'quit']);

/** How a terminal session ended: Ctrl-C, or anything else (Ctrl-D, exit/quit, end of input). */
export interface TerminalKeys {
  /** Resolves when Ctrl-C is pressed. */
  readonly interrupted: Promise<void>;
  /** Call before closing the prompt on purpose, so that no extra newline is printed. */
  leaving(): void;
}

/**
 * What a shell user expects of Ctrl-C and Ctrl-D at a prompt: the cursor ends on a fresh line
 * (not after `>>: `), Ctrl-C exits 130 as an interrupted command does, Ctrl-D exits 0.
 */
export function terminalKeys(lines: Interface, terminal: boolean): TerminalKeys {
  let ours = false;
  let interrupt!: () => void;
  const interrupted = new Promise<void>((resolve) => {
    interrupt = resolve;
  });
  if (terminal) {
    lines.on('SIGINT', () => {
      ours = true;
      process.stdout.write('\n');
      process.exitCode = EXIT.interrupted;
      lines.close();
      interrupt();
    });
    lines.once('close', () => {
      if (!ours) process.stdout.write('\n'); // Ctrl-D on an empty line
    });
  }
  return {
    interrupted,
    leaving: () => {
      ours = true;
    },
  };
}

/**
 * The tutorials' interactive client loop: a `>>: ` prompt with history on a terminal, one
 * non-empty line at a time to `onLine`, until `exit`, `quit`, Ctrl-D or the end of input. Ctrl-C
 * returns at once, even while `onLine` waits for an answer (see terminalKeys).
 */
export async function promptLoop(onLine: (line: string) => Promise<void>): Promise<void> {
  const terminal = Boolean(process.stdin.isTTY);
  const lines = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal,
    historySize: 1000,
  });
  const keys = terminalKeys(lines, terminal);
  lines.setPrompt('>>: ');
  if (terminal) lines.prompt();
  const loop = (async () => {
    for await (const line of lines) {
      const text = line.trim();
      if (QUIT_WORDS.has(text)) {
        keys.leaving(); // breaking closes the prompt, and the typed line already ended
        break;
      }
      if (text.length > 0) await onLine(line);
      if (terminal) lines.prompt();
    }
  })();
  loop.catch(() => {}); // after Ctrl-C nobody awaits the loop; its failure is moot then
  try {
    await Promise.race([loop, keys.interrupted]);
  } finally {
    keys.leaving();
    lines.close();
  }
}
