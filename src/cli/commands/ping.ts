import type { Command } from 'commander';
import { SockitError } from '../../errors.js';
import { action, addClientOptions, type ClientCliOptions, parseIntOption, withClient } from '../common.js';

export function registerPing(program: Command): void {
  addClientOptions(
    program
      .command('ping')
      .description('connect, handshake, and measure ping round trips')
      .argument('<address>', 'server address')
      .option('-c, --count <n>', 'number of pings', '1')
      .option('--json', 'print results as JSON'),
  ).action(
    action(async (address: string, options: ClientCliOptions & { count: string; json?: boolean }) => {
      const count = parseIntOption(options.count, '--count');
      if (count < 1)
        throw new SockitError('USAGE', `--count must be at least 1 (got ${count}): ping sends that many`);
      await withClient(address, options, async (client) => {
        const times: number[] = [];
        for (let i = 0; i < count; i++) times.push(await client.ping());
        if (options.json) {
          const result = {
            address,
            server: client.welcome.server,
            services: client.welcome.services,
            rttMs: times,
          };
          process.stdout.write(`${JSON.stringify({ ...result, authenticated: client.authenticated })}\n`);
          return;
        }
        for (const ms of times) process.stdout.write(`pong from ${address}: ${ms.toFixed(3)} ms\n`);
        const auth =
          client.welcome.auth === 'none'
            ? 'no auth'
            : client.authenticated
              ? 'authenticated'
              : 'not authenticated (no token)';
        process.stdout.write(
          `${client.welcome.server}, services: ${client.welcome.services.join(', ')}; ${auth}\n`,
        );
      });
    }),
  );
}
