import type { Command } from 'commander';
import { SockitError } from '../../errors.js';
import { argParsers } from '../../options.js';
import { parseRawAddress } from '../../raw/options.js';
import { action, DURATION_HELP, EXIT, reportError } from '../common.js';
import { promptLoop } from '../prompt.js';

interface UdpCliOptions {
  /** Milliseconds (argParsers.duration). */
  timeout?: number;
  retries?: number;
  json?: boolean;
}

/** `sockit udp`: the seeds' UDP client, with retries and a size check. */
export function registerUdp(program: Command): void {
  program
    .command('udp')
    .description(
      'send datagrams and print the replies; without TEXT, one datagram per stdin line (>>: prompt, exit/quit ends)',
    )
    .argument('<address>', 'udp://HOST:PORT or HOST:PORT')
    .argument('[text...]', 'text to send as one datagram (joined with spaces)')
    .option(
      '--timeout <duration>',
      `wait this long for each reply before sending again (${DURATION_HELP}; default 1s)`,
      argParsers.duration('--timeout'),
    )
    .option('--retries <n>', 'extra attempts after a timeout (default 3)', argParsers.integer('--retries'))
    .option('--json', 'print each reply as a JSON line with its round trip and attempts')
    .action(
      action(async (addressText: string, words: string[], options: UdpCliOptions) => {
        const { connectUdp, udpRequest } = await import('../../transport/udp.js');
        const address = parseRawAddress(addressText, true);
        const request = {
          timeoutMs: options.timeout ?? 1000,
          retries: options.retries ?? 3,
        };
        const connection = await connectUdp(address);
        const print = (reply: { payload: Buffer; attempts: number; rttMs: number }): void => {
          if (options.json) {
            process.stdout.write(
              `${JSON.stringify({ reply: reply.payload.toString('utf8'), bytes: reply.payload.length, attempts: reply.attempts, rttMs: Number(reply.rttMs.toFixed(3)) })}\n`,
            );
          } else {
            process.stdout.write(`${reply.payload.toString('utf8')}\n`);
          }
        };
        try {
          if (words.length > 0) {
            print(await udpRequest(connection, Buffer.from(words.join(' ')), request));
            return;
          }
          // A lost reply is reported and the prompt stays: UDP promises no delivery, so one
          // missing answer is no reason to end the session. The exit status remembers it.
          await promptLoop(async (line) => {
            try {
              print(await udpRequest(connection, Buffer.from(line.trim()), request));
            } catch (error) {
              if (!(error instanceof SockitError && error.code === 'TIMEOUT')) throw error;
              reportError(error, EXIT.failure);
            }
          });
        } finally {
          await connection.close();
        }
      }),
    );
}
