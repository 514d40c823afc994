/**
 * `sockit exec --hosts FILE`: the inventory, the parallelism limit, and the output modes of a
 * fleet run (pssh/clush/ansible's job): prefixed lines, `--group-output` (identical results shown
 * once, as clubak does), `--outdir`, `--json`.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SockitError } from '../errors.js';

/** One host of a run: its display name (an alias, else the address) and where it listens. */
export interface FleetHost {
  name: string;
  address: string;
}

/**
 * Reads a hosts file: one address per line, `name = address` aliases, `[group]` sections, `#`
 * comments. With `groups`, only hosts of those sections; without, every host. A host listed
 * twice (in two groups) runs once; a name given two addresses is a usage error naming both
 * lines (which one was meant cannot be told).
 */
export function readHostsFile(path: string, groups: readonly string[]): FleetHost[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SockitError(
      'USAGE',
      `--hosts ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  const byGroup = new Map<string, FleetHost[]>();
  /** Each name's address and the line that gave it first. */
  const named = new Map<string, { address: string; line: number }>();
  let group = '';
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line.length === 0) return;
    const section = /^\[([^\]\s]+)\]$/.exec(line);
    if (section) {
      group = section[1]!;
      return;
    }
    const alias = /^([^\s=]+)\s*=\s*(\S+)$/.exec(line);
    if (!alias && /\s|=/.test(line)) {
      throw new SockitError(
        'USAGE',
        `--hosts ${path}:${index + 1}: expected ADDRESS, NAME = ADDRESS or [group], got "${line}"`,
      );
    }
    const host = alias ? { name: alias[1]!, address: alias[2]! } : { name: line, address: line };
    const earlier = named.get(host.name);
    if (earlier && earlier.address !== host.address) {
      throw new SockitError(
        'USAGE',
        `--hosts ${path}:${index + 1}: "${host.name}" is ${host.address} here but ${earlier.address} at line ${earlier.line}`,
      );
    }
    if (!earlier) named.set(host.name, { address: host.address, line: index + 1 });
    const list = byGroup.get(group) ?? [];
    list.push(host);
    byGroup.set(group, list);
  });
  const wanted = groups.length > 0 ? groups : [...byGroup.keys()];
  const hosts = new Map<string, FleetHost>();
  for (const name of wanted) {
    const members = byGroup.get(name);
    if (!members) throw new SockitError('USAGE', `-g ${name}: no such group in ${path}`);
    for (const host of members) if (!hosts.has(host.name)) hosts.set(host.name, host);
  }
  if (hosts.size === 0) throw new SockitError('USAGE', `--hosts ${path}: no hosts`);
  return [...hosts.values()];
}

/** Runs `work` for each item with at most `limit` at once; results in the items' order. */
export async function runLimited<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Bytes kept per stream and host for the collecting modes; past it only the size is counted. */
const CAPTURE_LIMIT = 1024 * 1024;

/** A sink that keeps the first CAPTURE_LIMIT bytes of a host's stream and counts the rest. */
export class Capture extends Writable {
  readonly #chunks: Buffer[] = [];
  bytes = 0;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    const room = CAPTURE_LIMIT - Math.min(this.bytes, CAPTURE_LIMIT);
    if (room > 0) this.#chunks.push(chunk.subarray(0, room));
    this.bytes += chunk.length;
    callback();
  }

  /** What was kept. */
  get text(): string {
    return Buffer.concat(this.#chunks).toString('utf8');
  }

  get truncated(): boolean {
    return this.bytes > CAPTURE_LIMIT;
  }
}

/** One host's outcome in a collecting mode. */
export interface HostOutcome {
  host: FleetHost;
  exitCode: number;
  /** `exit 0`, `killed by SIGTERM`, `CONNECT_FAILED: …`. */
  outcome: string;
  /** Set when the command ran (it exited or was killed); absent for connection or request errors. */
  exit?: { code: number | null; signal: string | null };
  error?: { code: string; message: string };
  /** The command's run time as the server measured it; for a host that failed before running, the time until it failed. */
  durationMs: number;
  stdout: Capture;
  stderr: Capture;
}

/** `--json`: one object per host and line, in inventory order. */
export function printJson(outcomes: readonly HostOutcome[]): void {
  const lines = outcomes.map((result) =>
    JSON.stringify({
      host: result.host.name,
      address: result.host.address,
      exit: result.exitCode,
      signal: result.exit?.signal ?? null,
      durationMs: result.durationMs,
      ...(result.error ? { error: result.error } : {}),
      ...streamField('stdout', result.stdout),
      ...streamField('stderr', result.stderr),
    }),
  );
  process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
}

/** The stream's text, or only its size when it passed the capture limit. */
function streamField(name: 'stdout' | 'stderr', capture: Capture): Record<string, unknown> {
  return capture.truncated ? { [`${name}Bytes`]: capture.bytes } : { [name]: capture.text };
}

/**
 * `--group-output`: hosts whose stdout, stderr and exit status are identical are shown once,
 * under a header naming them (as clubak -b does). Hosts that failed before running are left to
 * the summary.
 */
export function printGroups(outcomes: readonly HostOutcome[]): void {
  const groups = new Map<string, HostOutcome[]>();
  for (const result of outcomes) {
    if (!result.exit) continue;
    const key = JSON.stringify([result.exitCode, result.stdout.text, result.stderr.text]);
    const list = groups.get(key) ?? [];
    list.push(result);
    groups.set(key, list);
  }
  const blocks: string[] = [];
  for (const members of groups.values()) {
    const first = members[0]!;
    const rule = '-'.repeat(15);
    const names = members.map((member) => member.host.name).join(',');
    const status = first.exitCode === 0 ? '' : `  [${first.outcome}]`;
    const body = [first.stdout.text, first.stderr.text].filter((text) => text.length > 0).join('');
    blocks.push(
      `${rule}\n${names} (${members.length})${status}\n${rule}\n${body}${body.endsWith('\n') || body === '' ? '' : '\n'}`,
    );
  }
  process.stdout.write(blocks.join(''));
}

/** `--outdir DIR`: DIR/NAME.stdout, NAME.stderr and NAME.exit per host (names made file-safe). */
export async function writeOutdir(dir: string, outcomes: readonly HostOutcome[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const result of outcomes) {
    const base = join(dir, result.host.name.replace(/[^A-Za-z0-9._-]/g, '_'));
    await writeFile(`${base}.stdout`, result.stdout.text);
    await writeFile(`${base}.stderr`, result.stderr.text);
    await writeFile(`${base}.exit`, `${result.exitCode}\n`);
  }
}

/** The one summary line on stderr, with the failed hosts after it. */
export function printFleetSummary(outcomes: readonly HostOutcome[]): void {
  const failed = outcomes.filter((result) => result.exitCode !== 0);
  const lines = [
    failed.length === 0
      ? `sockit exec: all ${outcomes.length} hosts succeeded`
      : `sockit exec: ${outcomes.length - failed.length} of ${outcomes.length} hosts succeeded, ${failed.length} failed`,
    ...failed.map((result) => `  ${result.host.name}  FAIL  ${result.outcome}`),
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
}
