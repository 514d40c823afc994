import { isIP } from 'node:net';
import { unmapIPv4 } from '../transport/address.js';
import { ipBytes } from '../transport/proxy.js';

/** HAProxy PROXY protocol versions `forward --proxy-protocol` can send. */
export type ProxyProtocolVersion = 'v1' | 'v2';

/** The v2 signature: 12 bytes no text protocol starts with. */
const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** The two ends of a client's connection as the relay sees them (a net.Socket has them). */
export interface ProxyEndpoints {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
}

interface Endpoints {
  source: { ip: string; port: number };
  destination: { ip: string; port: number };
  family: 4 | 6;
}

/**
 * The PROXY header that tells the target who the real client is (HAProxy's proxy-protocol.txt):
 * v1 is one text line (`PROXY TCP4 src dst sport dport\r\n`), v2 a binary block. A client with
 * no IP address (a unix: listener) is sent as `PROXY UNKNOWN` (v1) or the LOCAL command (v2).
 */
export function proxyHeader(version: ProxyProtocolVersion, client: ProxyEndpoints): Buffer {
  const endpoints = endpointsOf(client);
  return version === 'v1' ? v1(endpoints) : v2(endpoints);
}

function endpointsOf(socket: ProxyEndpoints): Endpoints | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined) return undefined;
  if (localAddress === undefined || localPort === undefined) return undefined;
  const source = unmapIPv4(remoteAddress);
  const destination = unmapIPv4(localAddress);
  const sourceFamily = isIP(source);
  // An IPv4 client on a dual-stack listener: both ends must be one family in the header.
  const family = sourceFamily === 4 && isIP(destination) === 4 ? 4 : 6;
  return {
    source: { ip: family === 6 ? remoteAddress : source, port: remotePort },
    destination: { ip: family === 6 ? localAddress : destination, port: localPort },
    family,
  };
}

function v1(endpoints: Endpoints | undefined): Buffer {
  if (endpoints === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const { source, destination, family } = endpoints;
  return Buffer.from(
    `PROXY TCP${family} ${source.ip} ${destination.ip} ${source.port} ${destination.port}\r\n`,
    'latin1',
  );
}

function v2(endpoints: Endpoints | undefined): Buffer {
  if (endpoints === undefined) {
    // LOCAL command, UNSPEC family, no addresses: the receiver uses the connection's own.
    return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  }
  const { source, destination, family } = endpoints;
  const addressBytes = family === 4 ? 4 : 16;
  const length = 2 * addressBytes + 4;
  const header = Buffer.alloc(16 + length);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY command
  header[13] = family === 4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  header.writeUInt16BE(length, 14);
  ipBytes(source.ip, family).copy(header, 16);
  ipBytes(destination.ip, family).copy(header, 16 + addressBytes);
  header.writeUInt16BE(source.port, 16 + 2 * addressBytes);
  header.writeUInt16BE(destination.port, 18 + 2 * addressBytes);
  return header;
}
