import type { Command } from 'commander';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import { argParsers } from '../options.js';
import type { Service } from '../server/service.js';
import { ECHO_TRANSFORMS, type EchoTransform, echoService } from '../services/echo.js';
import { chatServePlugin } from './serve-chat.js';
import { execServePlugin } from './serve-exec.js';
import { filesServePlugin } from './serve-files.js';
import { tunnelServePlugin } from './serve-tunnel.js';

/**
 * How `sockit serve` learns about a service: the options it adds and how it builds the service
 * from them. Each service's plugin lives next to its own CLI code; this list is the one place
 * that names them all.
 */
export interface ServePlugin {
  addOptions(command: Command): void;
  /** The service, or undefined when its options leave it off. `bus`: what `--bus` connected. */
  create(options: Record<string, unknown>, log: Logger, bus?: Bus): Service | undefined;
}

const echoPlugin: ServePlugin = {
  addOptions(command) {
    command.option(
      '--echo <transform>',
      `echo service transform: ${ECHO_TRANSFORMS.join(' or ')} (as the tutorials do)`,
      argParsers.choice('--echo', ECHO_TRANSFORMS),
      'none',
    );
  },
  create(options) {
    return echoService({ transform: options.echo as EchoTransform });
  },
};

export const SERVE_PLUGINS: ServePlugin[] = [
  echoPlugin,
  execServePlugin,
  filesServePlugin,
  chatServePlugin,
  tunnelServePlugin,
];
