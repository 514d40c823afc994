import type { Command } from 'commander';
import { invalidOption, SockitError } from '../errors.js';
import { argParsers } from '../options.js';
import { chatService } from '../services/chat.js';
import type { ServePlugin } from './serve-plugins.js';

/**
 * `sockit serve --chat`: the chat service (rooms, names, presence). It needs the token unless
 * the operator opens it: `--open echo,chat`. With `--bus` its rooms span every server on the bus.
 */
export const chatServePlugin: ServePlugin = {
  addOptions(command: Command) {
    command
      .option('--chat', 'run the chat service: rooms, unique names, presence (open it with --open echo,chat)')
      .option(
        '--chat-max-queue <bytes>',
        'drop a chat member with more than this many bytes of messages waiting for it (K/M suffixes; default 1M, at least 1K)',
        argParsers.bytes('--chat-max-queue'),
      );
  },
  create(options, _log, bus) {
    if (!options.chat) {
      if (options.chatMaxQueue !== undefined) {
        throw new SockitError('USAGE', '--chat-max-queue only means something with --chat');
      }
      return undefined;
    }
    const maxQueueBytes = (options.chatMaxQueue as number | undefined) ?? 1 << 20;
    if (maxQueueBytes < 1024) throw invalidOption('--chat-max-queue must be at least 1024 bytes (1K)');
    return chatService({ maxQueueBytes, ...(bus ? { bus } : {}) });
  },
};
