import { BlockList, isIP } from 'node:net';
import { SockitError } from '../../errors.js';
import { unmapIPv4 } from '../../transport/address.js';

/** One `--tunnel-allow` entry. */
type AllowRule =
  | { kind: 'unix'; path: string }
  | { kind: 'name'; host: string; low: number; high: number }
  | { kind: 'ip'; list: BlockList; low: number; high: number };

/**
 * The targets a tunnel may reach: `host:port`, `CIDR:port-range` (`10.0.0.0/8:1-1024`,
 * `[::1]:80`, `127.0.0.1:*`), `unix:/path`. Nothing outside it is reachable. A host name rule
 * matches the name the client asked for; IP rules match the address the server resolved, and
 * the server then connects to exactly that address (no second lookup to race against).
 */
export class TunnelAllowList {
  readonly #rules: AllowRule[];

  constructor(entries: readonly string[]) {
    this.#rules = entries.map(parseRule);
  }

  get size(): number {
    return this.#rules.length;
  }

  /** Whether the unix socket `path` is listed. */
  admitsPath(path: string): boolean {
    return this.#rules.some((rule) => rule.kind === 'unix' && rule.path === path);
  }

  /** Whether `name` (as asked) or `ip` (as resolved) with `port` is listed. */
  admits(name: string, ip: string, port: number): boolean {
    const address = unmapIPv4(ip);
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const host = name.toLowerCase();
    return this.#rules.some((rule) => {
      if (rule.kind === 'unix' || port < rule.low || port > rule.high) return false;
      if (rule.kind === 'name') return rule.host === host;
      return rule.list.check(address, family);
    });
  }
}

function parseRule(entry: string): AllowRule {
  const bad = (why: string): SockitError =>
    new SockitError(
      'USAGE',
      `--tunnel-allow: "${entry}" ${why} (use host:port, CIDR:port-range such as 10.0.0.0/8:1-1024, or unix:/path)`,
    );
  if (entry.startsWith('unix:')) {
    const path = entry.slice(5);
    if (!path.startsWith('/')) throw bad('needs an absolute path');
    return { kind: 'unix', path };
  }
  const colon = entry.lastIndexOf(':');
  if (colon <= 0) throw bad('has no port');
  let host = entry.slice(0, colon);
  const ports = entry.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) throw bad('is an IPv6 address without [brackets]');
  const [low, high] = parsePorts(ports, bad);
  const slash = host.indexOf('/');
  const network = slash < 0 ? host : host.slice(0, slash);
  const version = isIP(network);
  if (version === 0) {
    if (slash >= 0 || !/^[A-Za-z0-9.-]+$/.test(host)) throw bad('has a bad host');
    return { kind: 'name', host: host.toLowerCase(), low, high };
  }
  const max = version === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : Number(host.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw bad(`has a prefix outside 0-${max}`);
  const list = new BlockList();
  list.addSubnet(network, prefix, version === 4 ? 'ipv4' : 'ipv6');
  return { kind: 'ip', list, low, high };
}

function parsePorts(text: string, bad: (why: string) => SockitError): [number, number] {
  if (text === '*') return [1, 65535];
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!match) throw bad('has a bad port or range');
  const low = Number(match[1]);
  const high = Number(match[2] ?? match[1]);
  if (low < 1 || high > 65535 || low > high) throw bad('has a port outside 1-65535');
  return [low, high];
}
