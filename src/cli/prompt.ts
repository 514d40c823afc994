import { createInterface } from 'node:readline';

/** Lines that end an interactive session, as in the tutorials' `>>:` loops. */
const QUIT_WORDS = new Set(['exit', 'quit']);

/**
 * The tutorials' interactive client loop: a `>>: ` prompt with history on a terminal, one
 * non-empty line at a time to `onLine`, until `exit`, `quit` or the end of input.
 */
export async function promptLoop(onLine: (line: string) => Promise<void>): Promise<void> {
  const terminal = Boolean(process.stdin.isTTY);
  const lines = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal,
    historySize: 1000,
  });
  lines.setPrompt('>>: ');
  if (terminal) lines.prompt();
  try {
    for await (const line of lines) {
      const text = line.trim();
      if (QUIT_WORDS.has(text)) break;
      if (text.length > 0) await onLine(line);
      if (terminal) lines.prompt();
    }
  } finally {
    lines.close();
  }
}
