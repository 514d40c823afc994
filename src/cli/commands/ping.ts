import type { Command } from 'commander';
import { argParsers } from '../../options.js';
import { action, addClientOptions, type ClientCliOptions, withClient } from '../common.js';

export function registerPing(program: Command): void {
  addClientOptions(
    program
      .command('ping')
      .description('connect, handshake, and measure ping round trips')
      .argument('<address>', 'server address')
      .option('-c, --count <n>', 'number of pings (default 1)', argParsers.positive('--count'))
      .option('--json', 'print results as JSON'),
  ).action(
    action(async (address: string, options: ClientCliOptions & { count?: number; json?: boolean }) => {
      const count = options.count ?? 1;
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
