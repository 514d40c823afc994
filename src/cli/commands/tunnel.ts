import type { Command } from 'commander';
import { SockitError } from '../../errors.js';
import { action, addClientOptions, type ClientCliOptions, collect, configuredConnector } from '../common.js';
import { untilSignal } from '../signals.js';

interface TunnelCliOptions extends ClientCliOptions {
  local?: string[];
  remote?: string[];
  dynamic?: string[];
}

/** `host:port` parts of a spec, split on colons outside `[…]` (IPv6 literals). */
function splitSpec(spec: string): string[] {
  const parts: string[] = [];
  let current = '';
  let depth = 0;
  for (const char of spec) {
    if (char === '[') depth++;
    else if (char === ']') depth--;
    if (char === ':' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += char;
  }
  parts.push(current);
  return parts.map((part) => (part.startsWith('[') && part.endsWith(']') ? part.slice(1, -1) : part));
}

function port(text: string | undefined, flag: string, spec: string, allowZero: boolean): number {
  const value = Number(text);
  if (text === undefined || !/^\d{1,5}$/.test(text) || value > 65535 || (!allowZero && value === 0))
    throw new SockitError('USAGE', `${flag} ${spec}: "${text ?? ''}" is not a port`);
  return value;
}

/** A -L spec's target: a host and port at the server, or (`-L` only) a unix socket there. */
export type SpecTarget = { host: string; port: number } | { path: string };

/** Parses `[bind:]port:host:hostport` (-L, -R), and for -L also `[bind:]port:unix:/path`. */
export function parseForwardSpec(spec: string, flag: string) {
  const unix = /^(?:(.*):)?(\d+):unix:(\/.*)$/.exec(spec);
  if (unix && flag === '-L') {
    return {
      listen: { host: unix[1] ? splitSpec(unix[1])[0]! : '127.0.0.1', port: port(unix[2], flag, spec, true) },
      target: { path: unix[3]! } as SpecTarget,
    };
  }
  const parts = splitSpec(spec);
  if (parts.length !== 3 && parts.length !== 4)
    throw new SockitError('USAGE', `${flag} takes [bind:]port:host:hostport, got "${spec}"`);
  const [bind, listenPort, host, hostPort] = parts.length === 4 ? parts : ['127.0.0.1', ...parts];
  if (!host) throw new SockitError('USAGE', `${flag} ${spec}: no target host`);
  return {
    listen: { host: bind || '127.0.0.1', port: port(listenPort, flag, spec, true) },
    target: { host: host, port: port(hostPort, flag, spec, false) } as SpecTarget,
  };
}

/** Parses `[bind:]port` (-D). */
export function parseSocksSpec(spec: string) {
  const parts = splitSpec(spec);
  if (parts.length > 2) throw new SockitError('USAGE', `-D takes [bind:]port, got "${spec}"`);
  const [bind, listenPort] = parts.length === 2 ? parts : ['127.0.0.1', parts[0]];
  return { host: bind || '127.0.0.1', port: port(listenPort, '-D', spec, true) };
}

/** `sockit tunnel ADDR -L/-R/-D …`: ssh-style tunnels through a sockit server's tunnel service. */
export function registerTunnel(program: Command): void {
  addClientOptions(
    program
      .command('tunnel')
      .description('carry TCP through an authenticated sockit server, like ssh -L/-R/-D')
      .argument('<address>', 'server address (tcp://, tls://, unix:)')
      .option(
        '-L, --local <spec>',
        '[bind:]port:host:hostport or [bind:]port:unix:/path — listen here, connect from the server',
        collect,
      )
      .option(
        '-R, --remote <spec>',
        '[bind:]port:host:hostport — listen on the server, connect from here',
        collect,
      )
      .option(
        '-D, --dynamic <spec>',
        '[bind:]port — a SOCKS5 server here, connecting from the server',
        collect,
      ),
  )
    .addHelpText(
      'after',
      `
Examples:
  sockit tunnel tls://server:7070 -L 8080:127.0.0.1:80      like ssh -L 8080:127.0.0.1:80
  sockit tunnel tls://server:7070 -R 9000:127.0.0.1:3000    like ssh -R (server needs --tunnel-remote)
  sockit tunnel tls://server:7070 -D 1080                   like ssh -D: curl --socks5-hostname 127.0.0.1:1080
The server must run with --tunnel-allow LIST; the token is always needed. Local listeners bind
127.0.0.1 unless a bind address is given. One line per listener goes to stderr.
Exit codes: 0 after SIGTERM/SIGINT, 2 usage, 3 cannot connect or the connection was lost, 5 auth.`,
    )
    .action(
      action(async (address: string, options: TunnelCliOptions) => {
        const locals = (options.local ?? []).map((spec) => parseForwardSpec(spec, '-L'));
        const remotes = (options.remote ?? []).map((spec) => {
          const { listen, target } = parseForwardSpec(spec, '-R');
          return { listen, target: target as { host: string; port: number } };
        });
        const socks = (options.dynamic ?? []).map(parseSocksSpec);
        if (locals.length + remotes.length + socks.length === 0)
          throw new SockitError('USAGE', 'give at least one -L, -R or -D');
        const [connect, tunnel] = await Promise.all([
          // The config file's alias, token file and pin, as for every client command.
          configuredConnector(address, options, { requestTimeoutMs: 0 }),
          import('../../client/tunnel.js'),
        ]);
        const signal = untilSignal();
        const client = await connect();
        if (!client.authenticated) {
          client.destroy();
          throw new SockitError(
            'AUTH_REQUIRED',
            'tunnels need the token: set SOCKIT_TOKEN or pass --token-file',
          );
        }
        const say = (line: string): void => {
          process.stderr.write(`sockit: ${line}\n`);
        };
        const lost = new Promise<SockitError>((resolve) => client.once('close', resolve));
        const endpoints: { close(): Promise<void> }[] = [];
        try {
          for (const { listen, target } of locals) {
            const endpoint = await tunnel.forwardLocal(client, listen, target, say);
            endpoints.push(endpoint);
            const where = 'path' in target ? `unix:${target.path}` : `${target.host}:${target.port}`;
            say(`-L listening on ${endpoint.address} → ${where} (from the server)`);
          }
          for (const listen of socks) {
            const endpoint = await tunnel.forwardSocks(client, listen, say);
            endpoints.push(endpoint);
            say(`-D SOCKS5 listening on ${endpoint.address} (connecting from the server)`);
          }
          for (const { listen, target } of remotes) {
            const endpoint = await tunnel.forwardRemote(client, listen, target, say);
            endpoints.push(endpoint);
            say(
              `-R listening on the server at ${endpoint.address} → ${target.host}:${target.port} (from here)`,
            );
          }
        } catch (error) {
          client.destroy();
          throw error;
        }
        const stopped = new Promise<'signal'>((resolve) => {
          if (signal.aborted) resolve('signal');
          signal.addEventListener('abort', () => resolve('signal'), { once: true });
        });
        const outcome = await Promise.race([stopped, lost]);
        await Promise.all(endpoints.map((endpoint) => endpoint.close()));
        if (outcome !== 'signal') {
          throw new SockitError('CLOSED', `the tunnel connection was lost: ${outcome.message}`);
        }
        await client.close();
        process.exit(0);
      }),
    );
}
