import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import type { Client } from '../../client/client.js';
import { action, addClientOptions, type ClientCliOptions, withClient } from '../common.js';

/** Lines that end an interactive session, as in the tutorials' `>>:` loop. */
const QUIT_WORDS = new Set(['exit', 'quit']);

export function registerEcho(program: Command): void {
  addClientOptions(
    program
      .command('echo')
      .description(
        'send text to the echo service; without TEXT, an interactive >>: prompt (exit/quit ends it)',
      )
      .argument('<address>', 'server address')
      .argument('[text...]', 'text to send (joined with spaces)'),
  ).action(
    action(async (address: string, words: string[], options: ClientCliOptions) => {
      await withClient(address, options, async (client) => {
        if (words.length > 0) {
          process.stdout.write(`${(await client.echo(words.join(' '))).toString('utf8')}\n`);
          return;
        }
        await interactive(client);
      });
    }),
  );
}

async function interactive(client: Client): Promise<void> {
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
      if (text.length > 0) process.stdout.write(`${(await client.echo(line)).toString('utf8')}\n`);
      if (terminal) lines.prompt();
    }
  } finally {
    lines.close();
  }
}
