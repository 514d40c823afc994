/**
 * The `--workers` baseline: Node's plain `net` echo in N node:cluster workers sharing one port,
 * the least a multi-process Node TCP server can do per message.
 * Run as a child: `node cluster-echo-server.js N`; prints `ready <port>` once all N listen.
 */
import cluster from 'node:cluster';
import { createServer } from 'node:net';

if (cluster.isPrimary) {
  const count = Number(process.argv[2] ?? 2);
  let listening = 0;
  for (let i = 0; i < count; i++) {
    cluster.fork().on('message', (port: number) => {
      if (++listening === count) process.stdout.write(`ready ${port}\n`);
    });
  }
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => socket.destroy());
  });
  // Port 0 in cluster workers is one port for all of them, chosen once by the primary.
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('expected a TCP address');
    process.send?.(address.port);
  });
  process.on('SIGTERM', () => process.exit(0));
}
