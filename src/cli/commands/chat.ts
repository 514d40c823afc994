import { clearLine, createInterface, cursorTo, type Interface, moveCursor } from 'node:readline';
import type { Command } from 'commander';
import type { ChatRoom } from '../../client/chat.js';
import { SockitError } from '../../errors.js';
import { Backoff, isRetryable, retry } from '../../transport/backoff.js';
import {
  action,
  addClientOptions,
  addReconnectOptions,
  type ClientCliOptions,
  configuredConnector,
  reportError,
  sayRetry,
} from '../common.js';
import { terminalKeys } from '../prompt.js';

interface ChatCliOptions extends ClientCliOptions {
  name: string;
  room: string;
  reconnect?: boolean;
  reconnectMax?: number;
}

/** `sockit chat`: a terminal client for the chat service. */
export function registerChat(program: Command): void {
  addReconnectOptions(
    addClientOptions(
      program
        .command('chat')
        .description('join a chat room on a sockit server; /who lists members, /quit leaves')
        .argument('<address>', 'server address (the server runs `sockit serve --chat`)')
        .requiredOption('--name <name>', 'your name in the room (unique there)')
        .option('--room <room>', 'room to join', 'lobby'),
    ),
  ).action(
    action(async (address: string, options: ChatCliOptions) => {
      const connect = await configuredConnector(address, options);
      const join = async (): Promise<ChatRoom> => {
        const client = await connect();
        try {
          return await client.chat({ name: options.name, room: options.room });
        } catch (error) {
          client.destroy();
          throw error;
        }
      };
      const stop = new AbortController();
      const backoff = new Backoff();
      const attempts = (waitFirst: boolean) => (): Promise<ChatRoom> =>
        retry(join, {
          backoff,
          waitFirst,
          maxAttempts: options.reconnectMax,
          onRetry: sayRetry,
          signal: stop.signal,
        });
      const rejoin = options.reconnect
        ? () =>
            attempts(true)().catch((error: unknown) => {
              throw rejoinFailed(error, options);
            })
        : undefined;
      const room = await (options.reconnect ? attempts(false) : join)();
      try {
        await converse(room, rejoin, stop);
      } finally {
        stop.abort();
      }
    }),
  );
}

/** A rejoin that cannot work: a taken name says what to do instead. */
function rejoinFailed(error: unknown, options: ChatCliOptions): unknown {
  if ((error as SockitError).code !== 'CONFLICT') return error;
  return new SockitError(
    'CONFLICT',
    `cannot rejoin room "${options.room}" as "${options.name}": someone took the name while we were away; run again with another --name`,
  );
}

/**
 * Reads lines and says them; prints what arrives above the prompt without disturbing what is
 * being typed. Without a terminal (scripts, tests) it prints plain lines and ends at stdin EOF.
 * With `rejoin` (--reconnect) a dropped connection is replaced: lines typed meanwhile are
 * refused with a notice (a chat line that arrives minutes late would be out of place).
 */
async function converse(
  first: ChatRoom,
  rejoin: (() => Promise<ChatRoom>) | undefined,
  stop: AbortController,
): Promise<void> {
  const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const lines = createInterface({ input: process.stdin, output: process.stdout, terminal, historySize: 500 });
  const keys = terminalKeys(lines, terminal);
  lines.setPrompt(`[${first.room}] ${first.name}> `);
  const show = (text: string): void => printAbove(lines, text, terminal);

  let room: ChatRoom | undefined;
  let dropped: unknown;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const end = (reason: unknown): void => {
    dropped = reason;
    keys.leaving();
    lines.close();
    finish();
  };
  const attach = (joined: ChatRoom): void => {
    room = joined;
    joined.on('message', (message: { from: string; text: string }) =>
      show(`<${message.from}> ${message.text}`),
    );
    joined.on('presence', (presence: { name: string; event: string; reason?: string }) =>
      show(
        `* ${presence.name} ${presence.event === 'join' ? 'joined' : 'left'}${presence.reason ? ` (${presence.reason})` : ''}`,
      ),
    );
    joined.on('notice', (notice: { text: string }) => show(`* ${notice.text}`));
    joined.once('close', (reason: SockitError) => {
      room = undefined;
      joined.client.destroy();
      if (!rejoin || !isRetryable(reason) || stop.signal.aborted) return end(reason);
      process.stderr.write(`sockit: ${droppedWhy(reason)}\n`);
      rejoin().then((again) => {
        if (stop.signal.aborted) return again.client.destroy();
        process.stderr.write(`sockit: reconnected; rejoined ${again.room} as ${again.name}\n`);
        attach(again);
        show(`* rejoined ${again.room} as ${again.name}; here: ${[...again.members].join(', ')}`);
      }, end);
    });
  };
  attach(first);
  show(`* joined ${first.room} as ${first.name}; here: ${[...first.members].join(', ')}  (/who, /quit)`);
  if (terminal) lines.prompt();

  const typing = (async () => {
    for await (const line of lines) {
      if (terminal) {
        // The server sends our own message back in room order; show that copy instead of the typed line.
        moveCursor(process.stdout, 0, -1);
        clearLine(process.stdout, 0);
      }
      const text = line.trim();
      if (text === '/quit') {
        keys.leaving();
        break;
      }
      if (!room) show('* not connected (reconnecting); not sent');
      else if (text === '/who') show(`* in ${room.room}: ${[...room.members].join(', ')}`);
      else if (text.startsWith('/')) show('* commands: /who, /quit');
      else if (text.length > 0 && !room.say(line)) await room.client.drained();
      if (terminal) lines.prompt(true);
    }
  })();
  typing.catch(() => {}); // after Ctrl-C or a dropped connection nobody awaits the typing loop
  await Promise.race([typing, finished, keys.interrupted]);
  stop.abort();
  keys.leaving();
  lines.close();
  if (dropped !== undefined) {
    if ((dropped as SockitError).code !== 'CLOSED') reportError(dropped);
    else {
      process.stderr.write(`sockit: ${droppedWhy(dropped as SockitError)}\n`);
      process.exitCode = 3;
    }
    return;
  }
  if (!room) return;
  await room.leave().catch(() => {});
  await room.client.close();
}

/** A vanished server (keepalive) says so; a plain close keeps the short sentence. */
function droppedWhy(reason: SockitError): string {
  return reason.code === 'CLOSED' && reason.message.startsWith('connection closed')
    ? 'the server closed the connection'
    : reason.message;
}

/** Prints a line above the prompt and redraws the prompt with the half-typed input intact. */
function printAbove(lines: Interface, text: string, terminal: boolean): void {
  if (!terminal) {
    process.stdout.write(`${text}\n`);
    return;
  }
  cursorTo(process.stdout, 0);
  clearLine(process.stdout, 0);
  process.stdout.write(`${text}\n`);
  lines.prompt(true);
}
