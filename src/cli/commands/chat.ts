import { clearLine, createInterface, cursorTo, type Interface, moveCursor } from 'node:readline';
import type { Command } from 'commander';
import type { ChatRoom } from '../../client/chat.js';
import type { SockitError } from '../../errors.js';
import { action, addClientOptions, type ClientCliOptions, reportError, withClient } from '../common.js';
import { terminalKeys } from '../prompt.js';

interface ChatCliOptions extends ClientCliOptions {
  name: string;
  room: string;
}

/** `sockit chat`: a terminal client for the chat service. */
export function registerChat(program: Command): void {
  addClientOptions(
    program
      .command('chat')
      .description('join a chat room on a sockit server; /who lists members, /quit leaves')
      .argument('<address>', 'server address (the server runs `sockit serve --chat`)')
      .requiredOption('--name <name>', 'your name in the room (unique there)')
      .option('--room <room>', 'room to join', 'lobby'),
  ).action(
    action(async (address: string, options: ChatCliOptions) => {
      await withClient(address, options, async (client) => {
        const room = await client.chat({ name: options.name, room: options.room });
        await converse(room);
      });
    }),
  );
}

/**
 * Reads lines and says them; prints what arrives above the prompt without disturbing what is
 * being typed. Without a terminal (scripts, tests) it prints plain lines and ends at stdin EOF.
 */
async function converse(room: ChatRoom): Promise<void> {
  const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const lines = createInterface({ input: process.stdin, output: process.stdout, terminal, historySize: 500 });
  const keys = terminalKeys(lines, terminal);
  lines.setPrompt(`[${room.room}] ${room.name}> `);
  const show = (text: string): void => printAbove(lines, text, terminal);

  let dropped: SockitError | undefined;
  room.on('message', (message: { from: string; text: string }) => show(`<${message.from}> ${message.text}`));
  room.on('presence', (presence: { name: string; event: string; reason?: string }) =>
    show(
      `* ${presence.name} ${presence.event === 'join' ? 'joined' : 'left'}${presence.reason ? ` (${presence.reason})` : ''}`,
    ),
  );
  room.on('notice', (notice: { text: string }) => show(`* ${notice.text}`));
  const closed = new Promise<void>((resolve) => {
    room.once('close', (reason: SockitError) => {
      dropped = reason;
      keys.leaving();
      lines.close();
      resolve();
    });
  });
  show(`* joined ${room.room} as ${room.name}; here: ${[...room.members].join(', ')}  (/who, /quit)`);
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
      if (text === '/who') show(`* in ${room.room}: ${[...room.members].join(', ')}`);
      else if (text.startsWith('/')) show('* commands: /who, /quit');
      else if (text.length > 0 && !room.say(line)) await room.client.drained();
      if (terminal) lines.prompt(true);
    }
  })();
  typing.catch(() => {}); // after Ctrl-C or a dropped connection nobody awaits the typing loop
  await Promise.race([typing, closed, keys.interrupted]);
  keys.leaving();
  lines.close();
  if (dropped) {
    if (dropped.code !== 'CLOSED') reportError(dropped);
    else {
      // A vanished server (keepalive) says so; a plain close keeps the short sentence.
      const why = dropped.message.startsWith('connection closed')
        ? 'the server closed the connection'
        : dropped.message;
      process.stderr.write(`sockit: ${why}\n`);
    }
    if (dropped.code === 'CLOSED') process.exitCode = 3;
    return;
  }
  await room.leave().catch(() => {});
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
