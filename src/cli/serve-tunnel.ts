import type { Command } from 'commander';
import { SockitError } from '../errors.js';
import { tunnelService } from '../services/tunnel/index.js';
import { splitList } from './common.js';
import type { ServePlugin } from './serve-plugins.js';

interface TunnelCliOptions {
  tunnelAllow?: string;
  tunnelRemote?: boolean;
  open?: string[];
  insecureNoAuth?: boolean;
}

/**
 * `sockit serve --tunnel-allow LIST [--tunnel-remote]`: the tunnel service is off unless a list
 * is given, reaches only what it lists, and always needs the token.
 */
export const tunnelServePlugin: ServePlugin = {
  addOptions(command: Command) {
    command
      .option(
        '--tunnel-allow <targets>',
        'tunnel service: what tunnels may reach (comma-separated host:port, CIDR:port-range, unix:/path)',
      )
      .option('--tunnel-remote', 'tunnel: let clients open listeners here (-R; needs --tunnel-allow)');
  },
  create(raw, log) {
    const options = raw as TunnelCliOptions;
    if (options.tunnelAllow === undefined) {
      if (options.tunnelRemote) throw new SockitError('USAGE', '--tunnel-remote needs --tunnel-allow');
      return undefined;
    }
    if (options.open?.includes('tunnel')) {
      throw new SockitError(
        'USAGE',
        '--open tunnel: tunnels always need the token; remove tunnel from --open',
      );
    }
    const allow = splitList(options.tunnelAllow);
    if (allow.length === 0) throw new SockitError('USAGE', '--tunnel-allow needs at least one target');
    const service = tunnelService({ allow, remote: options.tunnelRemote === true, log });
    log.info('tunnel service on', { allow: allow.join(','), remote: options.tunnelRemote === true });
    if (options.insecureNoAuth) {
      log.warn(
        'tunnels run WITHOUT authentication (--insecure-no-auth): anyone who can connect may use them',
      );
    }
    return service;
  },
};
