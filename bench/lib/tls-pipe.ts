/**
 * The floor of a TLS tunnel written in Node, for the tunnel suite: what `ssh -L` does, with
 * Node's TLS and streams and nothing of sockit's. The client end listens on loopback and opens
 * one TLS connection to the server end per accepted connection; the server end opens one TCP
 * connection to the target per TLS connection; both pipe bytes with `stream.pipe`. No framing,
 * multiplexing, flow-control windows or authentication: what separates sockit's tunnel from
 * this is its protocol; what separates this from ssh is Node.
 *
 * `node tls-pipe.js server TARGET_PORT` and `node tls-pipe.js client SERVER_PORT` print
 * `listening PORT` once ready and run until killed.
 */
import net from 'node:net';
import tls from 'node:tls';
import { generateSelfSignedCertificate } from '../../src/transport/self-signed.js';

/** Joins two sockets both ways, each ending or failing the other. */
function join(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
}

function ready(server: net.Server): void {
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
  });
}

const [role, port] = [process.argv[2], Number(process.argv[3])];
if (role === 'server') {
  const { certPem, keyPem } = generateSelfSignedCertificate();
  ready(
    tls.createServer({ cert: certPem, key: keyPem }, (socket) => {
      join(socket, net.connect(port, '127.0.0.1'));
    }),
  );
} else if (role === 'client') {
  ready(
    net.createServer((socket) => {
      // A floor for throughput: the certificate is not checked (sockit's tunnel pins it).
      join(socket, tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }));
    }),
  );
} else {
  process.stderr.write('usage: tls-pipe.js server TARGET_PORT | client SERVER_PORT\n');
  process.exit(2);
}
