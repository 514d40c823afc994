import type { Command } from 'commander';
import { removeTree } from '../../client/files-tree.js';
import { action, addClientOptions, type ClientCliOptions, withClient } from '../common.js';

interface RmOptions extends ClientCliOptions {
  recursive?: boolean;
  quiet?: boolean;
}

/** `sockit rm [-r] ADDRESS PATH…`: delete files (or trees) on a files server. */
export function registerRm(program: Command): void {
  addClientOptions(
    program
      .command('rm')
      .description('delete files, empty directories or (with -r) whole directories on a files server')
      .argument('<address>', 'server address')
      .argument('<paths...>', 'paths under the server root')
      .option('-r, --recursive', 'delete directories with everything in them')
      .option('-q, --quiet', 'print nothing but errors'),
  ).action(
    action(async (address: string, paths: string[], options: RmOptions) => {
      await withClient(address, options, async (client) => {
        for (const path of paths) {
          let count = 1;
          if (options.recursive) count = await removeTree(client, path);
          else await client.delete(path);
          if (!options.quiet)
            process.stdout.write(`removed ${path}${count > 1 ? ` (${count} entries)` : ''}\n`);
        }
      });
    }),
  );
}
