import type { Command } from 'commander';
import { syncToRemote } from '../../client/sync.js';
import { SockitError } from '../../errors.js';
import { action, addClientOptions, type ClientCliOptions, collect, withClient } from '../common.js';

interface SyncCliOptions extends ClientCliOptions {
  delete?: boolean;
  dryRun?: boolean;
  json?: boolean;
  exclude?: string[];
}

/**
 * `ADDR:PATH` split after the port (`127.0.0.1:7070:dir`, `tls://[::1]:7070:dir`); undefined
 * for a local path. The port's digits end the address, so a path may itself hold colons.
 */
export function splitRemote(text: string): { address: string; path: string } | undefined {
  const match = /^((?:[a-z]+:\/\/)?(?:\[[^\]]+\]|[^:/[\]]+):\d+):(.*)$/.exec(text);
  return match ? { address: match[1]!, path: match[2]! } : undefined;
}

/** `sockit sync SRC ADDR:PATH`: make a remote directory hold what a local one holds. */
export function registerSync(program: Command): void {
  addClientOptions(
    program
      .command('sync')
      .usage('[options] LOCAL_DIR ADDRESS:PATH')
      .description(
        'send only the files that differ (size or mtime) from a local directory to one on a files server, over one connection',
      )
      .argument('<src>', 'local directory')
      .argument('<dest>', 'ADDRESS:PATH on the server, e.g. 127.0.0.1:7070:backup')
      .option('--delete', 'remove remote files the source does not have')
      .option('--dry-run', 'list every change, make none')
      .option(
        '--exclude <glob>',
        'leave matching paths alone on both sides (repeatable; *.tmp, build/**)',
        collect,
      )
      .option('--json', 'one JSON line per change, then the summary'),
  ).action(
    action(async (src: string, dest: string, options: SyncCliOptions) => {
      if (splitRemote(src)) {
        throw new SockitError('UNSUPPORTED', 'sync from a server to a local directory is not built yet');
      }
      const remote = splitRemote(dest);
      if (!remote) {
        throw new SockitError(
          'USAGE',
          'sync needs LOCAL_DIR ADDRESS:PATH, e.g. sockit sync dir 127.0.0.1:7070:backup',
        );
      }
      const summary = await withClient(remote.address, options, (client) =>
        syncToRemote(client, src, remote.path, {
          delete: options.delete ?? false,
          dryRun: options.dryRun ?? false,
          exclude: options.exclude ?? [],
        }),
      );
      const dry = options.dryRun ? ' (dry run: nothing changed)' : '';
      const lines = options.json
        ? [
            ...summary.changes.map((change) =>
              JSON.stringify({ event: change.action, ...change, dryRun: !!options.dryRun }),
            ),
            ...summary.unsupported.map((path) => JSON.stringify({ event: 'unsupported', path })),
            JSON.stringify({ event: 'summary', ...summary, changes: undefined, dryRun: !!options.dryRun }),
          ]
        : [
            ...summary.changes.map((change) => `${change.action} ${change.path}`),
            ...summary.unsupported.map((path) => `not synced (symlink or special file): ${path}`),
            `sent ${summary.sent}, skipped ${summary.skipped}, deleted ${summary.deleted}, ${summary.bytes} B in ${(summary.elapsedMs / 1000).toFixed(2)} s${dry}`,
          ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }),
  );
}
