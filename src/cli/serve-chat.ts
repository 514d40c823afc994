import type { Command } from 'commander';
import { SockitError } from '../errors.js';
import { chatService } from '../services/chat.js';
import { parseIntOption } from './common.js';
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
        'drop a chat member with more than this many bytes of messages waiting for it',
        String(1 << 20),
      );
  },
  create(options, _log, bus) {
    if (!options.chat) {
      if (options.chatMaxQueue !== undefined && options.chatMaxQueue !== String(1 << 20)) {
        throw new SockitError('USAGE', '--chat-max-queue only means something with --chat');
      }
      return undefined;
    }
    const maxQueueBytes = parseIntOption(
      options.chatMaxQueue as string | undefined,
      '--chat-max-queue',
      1 << 20,
    );
    if (maxQueueBytes < 1024) throw new SockitError('USAGE', '--chat-max-queue must be at least 1024 bytes');
    return chatService({ maxQueueBytes, ...(bus ? { bus } : {}) });
  },
};
