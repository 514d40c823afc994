/**
 * The client config file, `$XDG_CONFIG_HOME/sockit/config` (else `~/.config/sockit/config`):
 * host aliases with their address and client settings, so `sockit exec web1 -- uptime` works.
 *
 *   # one section per alias; [*] applies to every host
 *   [web1]
 *   address = tls://web1.example.com:7070
 *   token-file = ~/.config/sockit/web.token
 *   fingerprint = 3f:a2:…
 *   keepalive = 30s
 *   keepalive-count = 4
 *
 * Options given on the command line win over the file, an alias's section over `[*]`. `-F FILE`
 * reads another file (which must exist), `--no-config` none.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { SockitError } from '../errors.js';

/** What a section may set: the client options of the same names. */
export interface HostSettings {
  address?: string;
  tokenFile?: string;
  fingerprint?: string;
  keepalive?: string;
  keepaliveCount?: string;
}

const KEYS: Record<string, keyof HostSettings> = {
  address: 'address',
  'token-file': 'tokenFile',
  fingerprint: 'fingerprint',
  keepalive: 'keepalive',
  'keepalive-count': 'keepaliveCount',
};

/** Where the config file is looked for when -F does not say. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'sockit', 'config');
}

/** Parses a config file's text: sections by alias, `[*]` under the key `*`. */
export function parseClientConfig(text: string, path: string): Map<string, HostSettings> {
  const sections = new Map<string, HostSettings>();
  let current: HostSettings | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/(^|\s)#.*/, '').trim();
    if (line.length === 0) return;
    const where = `${path}:${index + 1}`;
    const section = /^\[([^\]\s]+)\]$/.exec(line);
    if (section) {
      current = sections.get(section[1]!) ?? {};
      sections.set(section[1]!, current);
      return;
    }
    const pair = /^([a-z-]+)\s*=\s*(.+)$/.exec(line);
    if (!pair) throw new SockitError('USAGE', `${where}: expected [alias] or key = value, got "${line}"`);
    const key = KEYS[pair[1]!];
    if (!key)
      throw new SockitError(
        'USAGE',
        `${where}: unknown setting "${pair[1]}" (${Object.keys(KEYS).join(', ')})`,
      );
    if (!current) throw new SockitError('USAGE', `${where}: "${pair[1]}" outside a [section]`);
    let value = pair[2]!.trim();
    if (key === 'tokenFile') value = expandPath(value, dirname(path));
    current[key] = value;
  });
  return sections;
}

/** `~/x` is in HOME; a relative path is relative to the config file's directory. */
function expandPath(value: string, base: string): string {
  if (value === '~' || value.startsWith('~/')) return join(process.env.HOME || homedir(), value.slice(1));
  return isAbsolute(value) ? value : resolve(base, value);
}

const loaded = new Map<string, Map<string, HostSettings>>();

/** Reads (once per process) the file `-F` names, else the default one if it exists; `false`: none. */
export function loadClientConfig(choice: string | false | undefined): Map<string, HostSettings> {
  if (choice === false) return new Map();
  const path = choice ?? defaultConfigPath();
  const cached = loaded.get(path);
  if (cached) return cached;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (choice === undefined && code === 'ENOENT') text = '';
    else throw new SockitError('USAGE', `config file ${path}: ${code ?? 'unreadable'}`);
  }
  const sections = parseClientConfig(text, path);
  loaded.set(path, sections);
  return sections;
}

/**
 * The address to dial and the options to use for `name`: its section's (and `[*]`'s) settings
 * under the ones the command line gave. A name without a section is an address as it is.
 */
export function applyClientConfig<T extends Omit<HostSettings, 'address'>>(
  name: string,
  options: T,
  config: Map<string, HostSettings>,
): { address: string; options: T } {
  const host = config.get(name);
  const merged = { ...config.get('*'), ...host };
  const result = { ...options };
  for (const key of ['tokenFile', 'fingerprint', 'keepalive', 'keepaliveCount'] as const) {
    if (result[key] === undefined && merged[key] !== undefined) (result as HostSettings)[key] = merged[key];
  }
  return { address: host?.address ?? name, options: result };
}
