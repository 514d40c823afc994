/** Help text shared by the raw-byte commands, `sockit connect` and `sockit listen`. */

/**
 * The relay's half-close rules, as `--help` tells them; `peer` is the other end of the socket
 * (the server for `connect`, the client for `listen`).
 */
export function halfCloseHelp(peer: 'server' | 'client'): string {
  return `Half-close: stdin EOF shuts down our write side and we keep reading until the ${peer} ends its
side, then exit 0. If the ${peer} ends first, we keep sending stdin until its EOF, except from a
terminal, where the ${peer}'s EOF ends the session at once.`;
}
