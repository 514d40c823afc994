import type { Command } from 'commander';
import { planUpload, runUploads } from '../../client/files-tree.js';
import { SockitError } from '../../errors.js';
import { action, addClientOptions, withClient } from '../common.js';
import {
  addTransferOptions,
  reporterCallbacks,
  runTransferCommand,
  type TransferCliOptions,
  transferOptions,
} from '../files-common.js';
import { fromStdin, STDIO_NAME, withStdinFile } from '../stdio-transfer.js';

/** `sockit put [-r] LOCAL… ADDRESS REMOTE`: upload files, verified by a negotiated checksum. */
export function registerPut(program: Command): void {
  addClientOptions(
    addTransferOptions(
      program
        .command('put')
        .usage('[options] LOCAL... ADDRESS REMOTE')
        .description(
          'upload files to a files server; REMOTE is a path under its root (a directory when it ends in "/", exists as one, or several LOCALs are given)',
        )
        .argument('<paths...>', 'LOCAL… ADDRESS REMOTE (LOCAL - reads stdin; REMOTE / is the root)'),
    ),
  ).action(
    action(async (args: string[], options: TransferCliOptions) => {
      if (args.length < 3) {
        throw new SockitError(
          'USAGE',
          'put needs LOCAL… ADDRESS REMOTE, e.g. sockit put a.bin 127.0.0.1:7070 dir/',
        );
      }
      const remote = args.at(-1)!;
      const address = args.at(-2)!;
      const locals = args.slice(0, -2);
      if (locals.includes(STDIO_NAME)) {
        if (locals.length > 1)
          throw new SockitError('USAGE', 'put - (stdin) uploads one stream; give it alone');
        await withStdinFile(remote, (item) =>
          withClient(address, options, (client) =>
            runTransferCommand('put', options, async (reporter, signal) => {
              reporter.start(1, item.size);
              await runUploads(
                client,
                [item],
                {
                  overwrite: options.overwrite ?? false,
                  resume: options.resume ?? false,
                  preserve: false,
                  compress: options.compress ?? false,
                  signal,
                },
                fromStdin(reporterCallbacks(reporter)),
              );
            }),
          ),
        );
        return;
      }
      await withClient(address, options, (client) =>
        runTransferCommand('put', options, async (reporter, signal) => {
          const items = await planUpload(client, locals, remote, { recursive: options.recursive ?? false });
          reporter.start(
            items.length,
            items.reduce((sum, item) => sum + item.size, 0),
          );
          await runUploads(client, items, transferOptions(options, signal), reporterCallbacks(reporter));
        }),
      );
    }),
  );
}
