import type { Command } from 'commander';
import { planDownload, runDownloads } from '../../client/files-tree.js';
import { SockitError } from '../../errors.js';
import { action, addClientOptions, withClient } from '../common.js';
import {
  addTransferOptions,
  reporterCallbacks,
  rootRelative,
  runTransferCommand,
  type TransferCliOptions,
  transferOptions,
} from '../files-common.js';
import { downloadToStdout, STDIO_NAME } from '../stdio-transfer.js';

/** `sockit get [-r] ADDRESS REMOTE [LOCAL]`: download files, verified by a negotiated checksum. */
export function registerGet(program: Command): void {
  addClientOptions(
    addTransferOptions(
      program
        .command('get')
        .description(
          'download a file (or, with -r, a directory) from a files server; it appears under its name only once its SHA-256 matches',
        )
        .argument('<address>', 'server address')
        .argument('<remote>', 'path under the server root')
        .argument('[local]', 'where to put it: a file name, an existing directory, or - for stdout', '.'),
    ),
  ).action(
    action(async (address: string, remote: string, local: string, options: TransferCliOptions) => {
      const path = rootRelative(remote);
      if (local === STDIO_NAME) {
        if (options.recursive)
          throw new SockitError('USAGE', 'get -r writes a directory; "-" (stdout) takes one file');
        await withClient(address, options, (client) =>
          runTransferCommand('get', { ...options, quiet: true }, (_reporter, signal) =>
            downloadToStdout(client, path, signal),
          ),
        );
        return;
      }
      await withClient(address, options, (client) =>
        runTransferCommand('get', options, async (reporter, signal) => {
          const plan = await planDownload(client, path, local, { recursive: options.recursive ?? false });
          reporter.start(
            plan.items.length,
            plan.items.reduce((sum, item) => sum + item.size, 0),
          );
          await runDownloads(client, plan, transferOptions(options, signal), reporterCallbacks(reporter));
        }),
      );
    }),
  );
}
