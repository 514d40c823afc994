/**
 * The floor of a networked exec service written in Node: exec-floor.c's shape (one byte each
 * way per command over one loopback TCP connection; a count per stdin line, "done" once that
 * many commands ran), with a Node client and a Node server process. The server starts `true`
 * through sockit's own native spawner, reads its stdout and stderr to their end and answers one
 * byte once it is reaped. No framing, authentication, policy, deadlines or audit: what separates
 * sockit's exec from this is its protocol and service; what separates this from exec-floor.c is
 * Node (two event loops and their wake-ups per round trip).
 *
 * `node exec-node-floor.js` is the client (it starts the server itself, as `… server`).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnTrue } from './spawn-true.js';

/** One command per byte received, in order; answers `y` (exit 0) or `n` per command. */
function serve(): void {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let queued = 0;
    let running = false;
    const next = (): void => {
      if (running || queued === 0) return;
      queued--;
      running = true;
      const answer = (reply: string): void => {
        running = false;
        socket.write(reply);
        next();
      };
      spawnTrue('native').then(
        () => answer('y'),
        () => answer('n'),
      );
    };
    socket.on('data', (bytes: Buffer) => {
      queued += bytes.length;
      next();
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`);
  });
  // Ends with its client (stdin closes when the client exits).
  process.stdin.on('end', () => process.exit(0)).resume();
}

async function client(): Promise<void> {
  const server = spawn(process.execPath, [fileURLToPath(import.meta.url), 'server'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    createInterface({ input: server.stdout! }).once('line', (line) => resolve(Number(line)));
  });
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let waiting: ((byte: number) => void) | undefined;
  socket.on('data', (bytes: Buffer) => {
    for (const byte of bytes) waiting?.(byte);
  });
  const roundTrip = (): Promise<number> =>
    new Promise((resolve) => {
      waiting = resolve;
      socket.write('x');
    });
  for await (const line of createInterface({ input: process.stdin })) {
    for (let i = 0; i < Number(line); i++) {
      if ((await roundTrip()) !== 0x79) throw new Error('remote true failed');
    }
    process.stdout.write('done\n');
  }
  socket.destroy();
  server.kill();
}

if (process.argv[2] === 'server') serve();
else await client();
