import type { Command } from 'commander';
import { Option } from 'commander';
import type { FilterRule, SyncChange, SyncSummary } from '../../client/sync.js';
import { SockitError } from '../../errors.js';
import { argParsers } from '../../options.js';
import { loadClientConfig } from '../client-config.js';
import { action, addClientOptions, type ClientCliOptions, withClient } from '../common.js';
import { createSyncBar } from '../progress.js';

interface SyncCliOptions extends ClientCliOptions {
  delete?: boolean;
  dryRun?: boolean;
  json?: boolean;
  verbose?: boolean;
  checksum?: boolean;
  concurrency?: number;
  /** Both --include and --exclude, in command-line order (first match wins). */
  filter: FilterRule[];
}

/**
 * `ADDR:PATH` split after the port (`127.0.0.1:7070:dir`, `tls://[::1]:7070:dir`), or after
 * the first colon when what precedes it is one of `aliases` (`web1:dir`, as rsync's
 * `HOST:PATH`, for an alias of the client config file); undefined for a local path. The port's
 * digits end an address, so a path may itself hold colons.
 */
export function splitRemote(
  text: string,
  aliases: ReadonlyMap<string, unknown> = new Map(),
): { address: string; path: string } | undefined {
  const match = /^((?:[a-z]+:\/\/)?(?:\[[^\]]+\]|[^:/[\]]+):\d+):(.*)$/.exec(text);
  if (match) return { address: match[1]!, path: match[2]! };
  const alias = /^([^:/[\]]+):(.*)$/.exec(text);
  // `[*]` holds settings for every host; it names none.
  return alias && alias[1] !== '*' && aliases.has(alias[1]!)
    ? { address: alias[1]!, path: alias[2]! }
    : undefined;
}

/** `sockit sync SRC DEST`: make one directory hold what another holds, either way. */
export function registerSync(program: Command): void {
  // --include and --exclude in command-line order: rsync's first-match-wins needs the order
  // across both options, which commander's per-option values lose; its option events keep it.
  const filter: FilterRule[] = [];
  const command = addClientOptions(
    program
      .command('sync')
      .usage('[options] SRC DEST   (one of them ADDRESS:PATH)')
      .description(
        'make DEST hold what SRC holds, sending only what differs (size or mtime), over one connection; ' +
          'either side may be ADDRESS:PATH on a files server (local to local is refused: use rsync or cp)',
      )
      .argument(
        '<src>',
        'local directory, or ADDRESS:PATH on the server, e.g. 127.0.0.1:7070:backup (or ALIAS:PATH, an alias of the config file)',
      )
      .argument('<dest>', 'ADDRESS:PATH on the server, or a local directory')
      .option('--delete', 'remove what the source does not have from the destination')
      .option('-n, --dry-run', 'list every change, make none')
      .option('--checksum', 'compare same-size files by SHA-256 (each side reads its own) instead of mtime')
      .option('--include <glob>', 'sync matching paths even if a later --exclude matches (repeatable)')
      .option(
        '--exclude <glob>',
        'leave matching paths alone on both sides (repeatable; *.tmp, build/**; the first matching rule wins)',
      )
      .addOption(
        new Option('--concurrency <n>', 'requests in flight on the connection (default 16)').argParser(
          argParsers.positive('--concurrency'),
        ),
      )
      .option('-v, --verbose', 'print each change as it is made (a dry run always does)')
      .option('--json', 'one JSON line per change as it is made, then the summary'),
  );
  command.on('option:include', (pattern: string) => filter.push({ action: 'include', pattern }));
  command.on('option:exclude', (pattern: string) => filter.push({ action: 'exclude', pattern }));
  command.action(
    action((src: string, dest: string, options: SyncCliOptions) =>
      runSync(src, dest, { ...options, filter }),
    ),
  );
}

async function runSync(src: string, dest: string, options: SyncCliOptions): Promise<void> {
  const aliases = loadClientConfig(options.config);
  const from = splitRemote(src, aliases);
  const to = splitRemote(dest, aliases);
  if (from && to) {
    throw new SockitError(
      'USAGE',
      'sync copies between this machine and a server: give one side as a local directory',
    );
  }
  if (!from && !to) {
    throw new SockitError(
      'USAGE',
      'sync needs one side as ADDRESS:PATH (local to local is not supported: use rsync or cp), e.g. sockit sync dir 127.0.0.1:7070:backup',
    );
  }
  const remote = (from ?? to)!;
  const bar = options.json ? undefined : createSyncBar();
  const out = lineWriter();
  const dryRun = options.dryRun ?? false;
  // Like rsync: a real run is quiet but for its summary unless asked (-v, --json); a dry run
  // exists to list the changes.
  const listChanges = options.json || ((dryRun || options.verbose) && !bar);
  const onChange = (change: SyncChange): void => {
    if (!listChanges) return;
    if (options.json) out(JSON.stringify({ event: change.action, ...change, dryRun }));
    else out(`${change.action} ${change.path}${change.target ? ` -> ${change.target}` : ''}`);
  };
  const syncOptions = {
    delete: options.delete ?? false,
    dryRun,
    checksum: options.checksum ?? false,
    filter: options.filter,
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    onChange,
    ...(bar ? { onProgress: bar.update } : {}),
  };
  let summary: SyncSummary;
  try {
    summary = await withClient(remote.address, options, async (client) => {
      const { syncFromRemote, syncToRemote } = await import('../../client/sync.js');
      return from
        ? syncFromRemote(client, from.path, dest, syncOptions)
        : syncToRemote(client, src, remote.path, syncOptions);
    });
  } finally {
    bar?.stop();
  }
  report(summary, options, out);
  out.flush();
  // A refused link is a change not made: say so in the exit status, as rsync's 23 does.
  if (summary.refused.length > 0) process.exitCode = 1;
}

/**
 * Lines for stdout, written together once per event-loop turn: 10,000 changes are a few
 * writes, not 10,000, and a reader (a test waiting for the first event) still sees each turn's
 * lines as they happen.
 */
function lineWriter(): ((line: string) => void) & { flush(): void } {
  let pending: string[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    process.stdout.write(`${pending.join('\n')}\n`);
    pending = [];
  };
  return Object.assign(
    (line: string): void => {
      pending.push(line);
      if (!scheduled) setImmediate(flush);
      scheduled = true;
    },
    { flush },
  );
}

function report(summary: SyncSummary, options: SyncCliOptions, out: (line: string) => void): void {
  const dryRun = options.dryRun ?? false;
  if (options.json) {
    for (const link of summary.refused)
      out(JSON.stringify({ event: 'refused', ...link, reason: 'leads outside the root' }));
    for (const path of summary.unsupported) out(JSON.stringify({ event: 'unsupported', path }));
    const { changes: _changes, ...totals } = summary;
    out(JSON.stringify({ event: 'summary', ...totals, refused: summary.refused.length, dryRun }));
    return;
  }
  for (const link of summary.refused) {
    process.stderr.write(
      `refused ${link.path} -> ${link.target}: the link leads outside the root; nothing written\n`,
    );
  }
  for (const path of summary.unsupported) out(`not synced (special file or reserved name): ${path}`);
  const seconds = (summary.elapsedMs / 1000).toFixed(2);
  out(
    `sent ${summary.sent}, skipped ${summary.skipped}, deleted ${summary.deleted}, ` +
      `${summary.bytes} B in ${seconds} s${dryRun ? ' (dry run: nothing changed)' : ''}`,
  );
}
