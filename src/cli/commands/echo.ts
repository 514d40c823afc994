import type { Command } from 'commander';
import type { Client } from '../../client/client.js';
import { action, addClientOptions, type ClientCliOptions, withClient } from '../common.js';
import { promptLoop } from '../prompt.js';

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

function interactive(client: Client): Promise<void> {
  return promptLoop(async (line) => {
    process.stdout.write(`${(await client.echo(line)).toString('utf8')}\n`);
  });
}
