import type { Command } from 'commander';
import { action } from '../common.js';
import { addForwardOptions, type ForwardCliOptions, runForwardCommand } from '../forward-common.js';

/** `sockit forward LISTEN TARGET`: socat's two-address relay with sockit's addresses. */
export function registerForward(program: Command): void {
  addForwardOptions(
    program
      .command('forward')
      .description(
        'relay every client of LISTEN to a fresh connection to TARGET (tcp, tls, unix; udp to udp); ' +
          'prints "listening on ADDR" to stderr and one line per connection',
      ),
  )
    .addHelpText(
      'after',
      `
Examples:
  sockit forward 127.0.0.1:8080 10.0.0.5:80             tcp → tcp (socat TCP-LISTEN:8080,fork TCP:10.0.0.5:80)
  sockit forward unix:/tmp/db.sock 127.0.0.1:5432       unix → tcp
  sockit forward tls://127.0.0.1:8443 127.0.0.1:8080    TLS termination (self-signed cert, or --cert/--key)
  sockit forward 127.0.0.1:5432 tls://db:5432 --ca ca.pem   TLS origination
  sockit forward udp://127.0.0.1:5353 udp://127.0.0.1:53    one upstream socket per client peer

A client's EOF reaches the target as EOF and the answer still comes back (half-close both ways).
Exit codes: 0 after SIGTERM/SIGINT (a second signal exits 130 at once), 2 usage, 1 cannot listen.`,
    )
    .action(
      action(async (listen: string, target: string, options: ForwardCliOptions) =>
        runForwardCommand(listen, target, options),
      ),
    );
}
