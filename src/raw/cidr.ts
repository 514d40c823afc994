import { BlockList, isIP } from 'node:net';
import { SockitError } from '../errors.js';
import { unmapIPv4 } from '../transport/address.js';

/** One parsed entry of an allow or deny list: `10.0.0.0/8`, `::1`, `fd00::/8`. */
export interface CidrRule {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * Parses `--allow`/`--deny` values: comma- or space-separated IPv4/IPv6 addresses, each with an
 * optional `/prefix`. A bare address is a single host (/32 or /128). Host names are refused:
 * access decisions must not depend on DNS answers. A value with no address in it (`''`, `' '`,
 * `','`) is a USAGE error: an allow list that parsed to nothing would otherwise admit everyone.
 */
export function parseCidrList(values: readonly string[], option = '--allow/--deny'): CidrRule[] {
  const rules: CidrRule[] = [];
  for (const value of values) {
    const items = value.split(/[\s,]+/).filter((item) => item !== '');
    if (items.length === 0) {
      throw new SockitError(
        'USAGE',
        `${option}: "${value}" lists no address; give IPs or CIDR blocks (e.g. 127.0.0.1, 10.0.0.0/8)`,
      );
    }
    for (const item of items) rules.push(parseCidr(item, option));
  }
  return rules;
}

function parseCidr(text: string, option: string): CidrRule {
  const slash = text.indexOf('/');
  const network = stripBrackets(slash < 0 ? text : text.slice(0, slash));
  const version = isIP(network);
  if (version === 0) {
    throw new SockitError(
      'USAGE',
      `${option}: "${text}" is not an IP address or CIDR block (e.g. 192.168.0.0/16, ::1, fd00::/8)`,
    );
  }
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    prefix = Number(prefixText);
    if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
      throw new SockitError('USAGE', `${option}: "${text}" has a prefix outside 0-${max}`);
    }
  }
  return { network, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function stripBrackets(text: string): string {
  return text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
}

/**
 * Who may connect: with an allow list, only matching peers; a deny match always refuses.
 * IPv4 clients of a dual-stack socket (`::ffff:10.1.2.3`) match IPv4 rules.
 */
export class AccessList {
  readonly #allow: BlockList | undefined;
  readonly #deny: BlockList | undefined;

  constructor(allow: readonly CidrRule[], deny: readonly CidrRule[]) {
    this.#allow = allow.length > 0 ? toBlockList(allow) : undefined;
    this.#deny = deny.length > 0 ? toBlockList(deny) : undefined;
  }

  /** Builds the list from raw option values; throws USAGE on a bad entry. */
  static fromOptions(allow: readonly string[] = [], deny: readonly string[] = []): AccessList {
    return new AccessList(parseCidrList(allow, '--allow'), parseCidrList(deny, '--deny'));
  }

  /** True when any rule is set: callers use it to refuse lists on Unix sockets (no peer address). */
  get active(): boolean {
    return this.#allow !== undefined || this.#deny !== undefined;
  }

  /** Whether a peer with this IP may talk to us. Without an address (Unix socket) there is nothing to match. */
  admits(address: string | undefined): boolean {
    if (address === undefined) return true;
    const ip = normalizeIp(address);
    if (ip === undefined) return false; // not an IP we can judge: refuse rather than guess
    if (this.#deny && matches(this.#deny, ip)) return false;
    if (this.#allow && !matches(this.#allow, ip)) return false;
    return true;
  }
}

function toBlockList(rules: readonly CidrRule[]): BlockList {
  const list = new BlockList();
  for (const rule of rules) list.addSubnet(rule.network, rule.prefix, rule.family);
  return list;
}

/** Drops an IPv6 zone (`fe80::1%eth0`) and unwraps IPv4-mapped IPv6. */
function normalizeIp(address: string): { ip: string; family: 'ipv4' | 'ipv6' } | undefined {
  const ip = unmapIPv4(address.replace(/%.*$/, ''));
  const version = isIP(ip);
  if (version === 0) return undefined;
  return { ip, family: version === 4 ? 'ipv4' : 'ipv6' };
}

function matches(list: BlockList, address: { ip: string; family: 'ipv4' | 'ipv6' }): boolean {
  return list.check(address.ip, address.family);
}
