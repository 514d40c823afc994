/**
 * The baseline: Node's plain `net` echo server, the least a Node TCP server can do per message.
 * Run as a child: `node net-echo-server.js [PORT]`; prints `ready <port>` once listening.
 */
import { createServer } from 'node:net';

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => socket.destroy());
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address');
  process.stdout.write(`ready ${address.port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
