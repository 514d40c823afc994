import type { Socket } from 'node:net';
import { type RelayResult, relay } from './relay.js';
import type { Taps } from './session-log.js';
import { isInteractive, standardInput, standardOutputFd } from './stdio.js';

/** How a session's stdin/stdout side relays: the `connect` and `listen` flags it shares. */
export interface StdioRelayOptions {
  /** Input EOF shuts down our write side. Default true. */
  shutdown?: boolean | undefined;
  sendOnly?: boolean | undefined;
  recvOnly?: boolean | undefined;
  idleTimeoutMs?: number | undefined;
}

/**
 * Joins `socket` to stdin/stdout with the relay's half-close rules; from a terminal the peer's EOF
 * ends the session at once.
 */
export function relayStdio(
  socket: Socket,
  options: StdioRelayOptions,
  taps: Taps | undefined,
): Promise<RelayResult> {
  const input = options.recvOnly ? undefined : standardInput();
  return relay({
    socket,
    input,
    output: options.sendOnly ? undefined : process.stdout,
    outputFd: standardOutputFd(),
    shutdown: options.shutdown ?? true,
    stopOnPeerEof: isInteractive(input),
    idleTimeoutMs: options.idleTimeoutMs,
    taps,
  });
}
