import type { Command } from 'commander';
import { action, collect } from '../common.js';
import { addForwardOptions, type ForwardCliOptions, runForwardCommand } from '../forward-common.js';

interface ChaosCliOptions extends ForwardCliOptions {
  toxic?: string[];
  control?: string;
}

/** `sockit chaos LISTEN TARGET`: a forward with toxiproxy's toxics, changeable at run time. */
export function registerChaos(program: Command): void {
  addForwardOptions(
    program
      .command('chaos')
      .description(
        'a forward that misbehaves on purpose: latency, bandwidth, slicer, limit-data, timeout, reset-peer, ' +
          'slow-close; on udp:// also loss, duplicate, reorder',
      ),
  )
    .option(
      '-t, --toxic <spec>',
      'TYPE[:up|down|both][:VALUE][:key=value…], e.g. latency:down:200ms:jitter=50ms (repeatable)',
      collect,
    )
    .option('--control <addr>', 'HTTP control API on this loopback address: GET/POST/DELETE /toxics (JSON)')
    .addHelpText(
      'after',
      `
Toxics (VALUE is the first attribute; N% or p=N% is the toxicity, the chance it applies to a
connection, or to a datagram on udp://, default 100% (reorder 50%); name= names it, default
TYPE_STREAM; times are at most 24.8 days):
  latency:STREAM:200ms:jitter=50ms     delay every chunk by 200 ms ± 50 ms
  bandwidth:STREAM:100KB               at most 100 KB per second (units B, KB, MB, KiB, MiB)
  slicer:STREAM:64:variation=16:delay=1ms   pieces of 64 ± 16 bytes, 1 ms apart
  limit-data:STREAM:1000               close the connection once 1000 bytes went through
  timeout:STREAM:5s                    stop forwarding; close after 5 s (0: hold until removed)
  reset-peer:STREAM:500ms              reset both sides (TCP RST) after 500 ms
  slow-close:STREAM:2s                 carry the EOF on 2 s late
  loss:STREAM:30%                      drop 30 % of datagrams (udp:// only)
  duplicate:STREAM:10%                 send 10 % twice (udp:// only)
  reorder:STREAM:20%:delay=20ms        hold 20 % back 20 ms, so later ones overtake them (udp:// only)
Control API: curl -s localhost:8474/toxics; curl -d '{"spec":"latency:down:200ms"}' localhost:8474/toxics;
curl -X DELETE localhost:8474/toxics/latency_down`,
    )
    .action(
      action(async (listen: string, target: string, options: ChaosCliOptions) => {
        const [{ chaosHooks, parseToxicSpec, startControl, ToxicSet }, { parseAddress, formatAddress }] =
          await Promise.all([import('../../raw/chaos/index.js'), import('../../transport/address.js')]);
        const udp = parseAddress(listen).kind === 'udp';
        const toxics = new ToxicSet(udp);
        for (const spec of options.toxic ?? []) toxics.add(parseToxicSpec(spec));
        const control = options.control === undefined ? undefined : parseAddress(options.control);
        await runForwardCommand(listen, target, options, {
          ...chaosHooks(toxics),
          async started() {
            if (!control) return undefined;
            const server = await startControl(control, toxics);
            process.stderr.write(
              `sockit: control API on http://${formatAddress(server.address).slice(6)}/toxics\n`,
            );
            return server;
          },
        });
      }),
    );
}
