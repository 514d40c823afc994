import type { Command } from 'commander';
import type { FileEntry } from '../../client/files.js';
import { action, addClientOptions, type ClientCliOptions, withClient } from '../common.js';
import { rootRelative } from '../files-common.js';
import { formatBytes } from '../progress.js';

interface LsOptions extends ClientCliOptions {
  recursive?: boolean;
  json?: boolean;
}

/** `sockit ls [-r] ADDRESS [DIR]`: list a directory of a files server. */
export function registerLs(program: Command): void {
  addClientOptions(
    program
      .command('ls')
      .description('list a directory of a files server (mode, size, modification time, path)')
      .argument('<address>', 'server address')
      .argument('[dir]', 'directory under the server root; "/" or nothing is the root')
      .option('-r, --recursive', 'list the whole tree')
      .option('--json', 'one JSON array of entries on stdout'),
  ).action(
    action(async (address: string, dir: string | undefined, options: LsOptions) => {
      await withClient(address, options, async (client) => {
        const entries = await client.list(rootRelative(dir ?? ''), { recursive: options.recursive ?? false });
        if (options.json) {
          process.stdout.write(`${JSON.stringify(entries)}\n`);
          return;
        }
        process.stdout.write(entries.map(formatEntry).join(''));
      });
    }),
  );
}

/** `drwxr-xr-x   4.0 KiB  2025-01-31 12:00  dir/`: like `ls -l`, one line per entry. */
function formatEntry(entry: FileEntry): string {
  const kind = entry.kind === 'dir' ? 'd' : '-';
  const size = entry.kind === 'dir' ? '-' : formatBytes(entry.size);
  const time = new Date(entry.mtimeMs).toISOString().slice(0, 16).replace('T', ' ');
  return `${kind}${permissions(entry.mode)}  ${size.padStart(10)}  ${time}  ${entry.path}${entry.kind === 'dir' ? '/' : ''}\n`;
}

function permissions(mode: number): string {
  const bits = 'rwxrwxrwx';
  let out = '';
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : '-';
  return out;
}
