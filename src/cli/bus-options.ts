import type { Command } from 'commander';
import type { Bus } from '../bus/bus.js';
import { SockitError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseDuration } from '../options.js';
import { DURATION_HELP } from './common.js';

/** The `--bus*` options of `serve` and `listen`, as commander parses them. */
export interface BusCliOptions {
  bus?: string;
  busCreds?: string;
  busCa?: string;
  busCert?: string;
  busKey?: string;
  busHeartbeat?: string;
}

/** Adds `--bus URL`, its credentials and TLS, and `--bus-heartbeat`. */
export function addBusOptions(command: Command, what: string): Command {
  return command
    .option(
      '--bus <url>',
      `share ${what} with other sockit servers over NATS: nats://HOST:PORT or tls://HOST:PORT`,
    )
    .option('--bus-creds <file>', 'NATS credentials file (.creds) for --bus; never logged')
    .option('--bus-ca <pem>', 'CA certificate to trust for TLS to NATS')
    .option('--bus-cert <pem>', 'client certificate for TLS to NATS (with --bus-key)')
    .option('--bus-key <pem>', 'private key of --bus-cert')
    .option(
      '--bus-heartbeat <duration>',
      `presence and name refresh period (${DURATION_HELP}; default 2s); a server silent for 3 of them is gone with its members`,
    );
}

/** Connects the bus the options ask for, or undefined without `--bus`. */
export async function openBus(options: BusCliOptions, log: Logger): Promise<Bus | undefined> {
  const url = options.bus;
  const extras = ['--bus-creds', '--bus-ca', '--bus-cert', '--bus-key'].filter(
    (flag) => options[flagKey(flag)] !== undefined,
  );
  if (url === undefined) {
    if (extras.length > 0)
      throw new SockitError('USAGE', `${extras.join(', ')} only mean something with --bus`);
    return undefined;
  }
  if (!url.split(',').every((one) => /^(nats|tls):\/\/[^/\s]+$/i.test(one.trim()))) {
    throw new SockitError(
      'USAGE',
      `--bus takes nats://HOST:PORT or tls://HOST:PORT (comma-separated), got "${url}"`,
    );
  }
  if ((options.busCert === undefined) !== (options.busKey === undefined)) {
    throw new SockitError('USAGE', '--bus-cert and --bus-key go together');
  }
  const heartbeatMs =
    options.busHeartbeat === undefined ? 2000 : parseDuration(options.busHeartbeat, '--bus-heartbeat');
  if (heartbeatMs < 100) throw new SockitError('USAGE', '--bus-heartbeat must be at least 100 ms');
  const tls =
    options.busCa !== undefined || options.busCert !== undefined
      ? {
          ...(options.busCa !== undefined ? { caFile: options.busCa } : {}),
          ...(options.busCert !== undefined ? { certFile: options.busCert, keyFile: options.busKey! } : {}),
        }
      : undefined;
  const { natsBus } = await import('../bus/nats.js');
  return natsBus({
    url,
    heartbeatMs,
    log,
    ...(options.busCreds !== undefined ? { credsFile: options.busCreds } : {}),
    ...(tls ? { tls } : {}),
  });
}

function flagKey(flag: string): keyof BusCliOptions {
  return flag
    .slice(2)
    .replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase()) as keyof BusCliOptions;
}
