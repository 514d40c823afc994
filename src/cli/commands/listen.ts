import type { Command } from 'commander';
import { SockitError } from '../../errors.js';
import { createLogger } from '../../log.js';
import { argParsers } from '../../options.js';
import { ECHO_TRANSFORMS, type EchoTransform } from '../../protocol/transform.js';
import type { ListenMode } from '../../raw/listen.js';
import { execSpecFrom, parseRawAddress } from '../../raw/options.js';
import { addBusOptions, type BusCliOptions, openBus } from '../bus-options.js';
import { action, collect, DURATION_HELP, exitCodeFor, reportError } from '../common.js';
import { halfCloseHelp } from '../raw-help.js';
import { untilSignal } from '../signals.js';
import { tutorialExecMode, tutorialUploadMode } from '../tutorial-modes.js';

interface ListenCliOptions extends BusCliOptions {
  udp?: boolean;
  keepOpen?: boolean;
  maxConns?: number;
  allow?: string[];
  deny?: string[];
  exec?: string[];
  shExec?: string;
  broker?: boolean;
  chat?: boolean;
  echo?: EchoTransform | true;
  greeting?: string;
  tutorialExec?: boolean;
  execAllow?: string;
  tutorialUpload?: string;
  sendOnly?: boolean;
  recvOnly?: boolean;
  shutdown: boolean;
  /** Milliseconds (argParsers.duration). */
  idleTimeout?: number;
  hex?: boolean;
  output?: string;
  verbose?: boolean;
  cert?: string;
  key?: string;
  stateDir?: string;
}

/** `sockit listen`: the netcat-style server side. */
export function registerListen(program: Command): void {
  const command = program
    .command('listen')
    .description(
      'accept raw connections (no framing): stdin/stdout, --exec, --echo, --broker or --chat; ' +
        'prints "listening on ADDR" to stderr',
    )
    .argument('[address]', 'tcp://HOST:PORT, tls://…, udp://…, unix:/PATH, HOST:PORT or PORT', '127.0.0.1:0')
    .option('-u, --udp', 'the address is UDP (same as udp://HOST:PORT)')
    .option('-k, --keep-open', 'serve many clients, at once and one after another, until stopped')
    .option(
      '-m, --max-conns <n>',
      'clients at once with --keep-open; extras are told and closed (default 100)',
      argParsers.positive('--max-conns'),
    )
    .option('--allow <cidrs>', 'only these IPs/CIDR blocks may connect (comma list, repeatable)', collect)
    .option('--deny <cidrs>', 'these IPs/CIDR blocks may not connect (comma list, repeatable)', collect)
    .option(
      '-e, --exec <command...>',
      "connect each client to a fresh process (argv, no shell); put it last, or quote it: -e 'grep -v x'",
    )
    .option('-c, --sh-exec <command>', 'connect each client to `/bin/sh -c COMMAND`')
    .option('--broker', "relay every client's bytes to every other client")
    .option('--chat', 'line chat for plain clients: names, <user> prefixes, join/leave notices')
    .option(
      '--echo [transform]',
      `raw echo server: ${ECHO_TRANSFORMS.join(' or ')} (the tutorials’ servers)`,
      argParsers.choice('--echo', ECHO_TRANSFORMS),
    )
    .option('--greeting <text>', 'with --echo: send this line to each client on connect')
    .option(
      '--tutorial-exec',
      "the tutorials' remote-command protocol (bare command in, 4-byte length + output back), argv without a shell; needs --exec-allow",
    )
    .option('--exec-allow <programs>', 'with --tutorial-exec: the programs clients may run (comma-separated)')
    .option(
      '--tutorial-upload <dir>',
      "the tutorials' line-by-line upload (success after each chunk, quit ends); each upload appears in DIR as upload-N",
    )
    .option('--send-only', 'only send stdin; drop what clients send')
    .option('--recv-only', 'only print what clients send; do not read stdin')
    .option('--no-shutdown', 'keep our write side open after stdin EOF')
    .option(
      '-i, --idle-timeout <duration>',
      `close a connection idle this long (${DURATION_HELP})`,
      argParsers.duration('-i'),
    )
    .option('--hex', 'hex dump of both directions to stderr')
    .option('-o, --output <file>', 'log every byte of every session to FILE (mode 0600)')
    .option('-v, --verbose', 'connection messages on stderr')
    .option('--cert <pem>', 'TLS certificate (default: the self-signed one in the state dir)')
    .option('--key <pem>', 'TLS private key for --cert')
    .option('--state-dir <dir>', 'where the self-signed certificate lives (default: $SOCKIT_STATE_DIR)')
    .addHelpText(
      'after',
      `
${halfCloseHelp('client')} With --keep-open, stdin goes to
every client and a client's EOF ends its session. Echo, broker, chat and the tutorial modes
always keep open.`,
    )
    .action(
      action(async (addressText: string, options: ListenCliOptions) =>
        runListenCommand(addressText, options),
      ),
    );
  addBusOptions(command, 'the --broker or --chat');
}

async function modeFrom(options: ListenCliOptions): Promise<ListenMode> {
  const chosen = [
    options.exec && '--exec',
    options.shExec !== undefined && '--sh-exec',
    options.broker && '--broker',
    options.chat && '--chat',
    options.echo !== undefined && '--echo',
    options.tutorialExec && '--tutorial-exec',
    options.tutorialUpload !== undefined && '--tutorial-upload',
  ].filter(Boolean);
  if (chosen.length > 1)
    throw new SockitError('USAGE', `${chosen.join(' and ')} exclude each other; pick one`);
  if (options.greeting !== undefined && options.echo === undefined) {
    throw new SockitError('USAGE', '--greeting goes with --echo');
  }
  if (options.execAllow !== undefined && !options.tutorialExec) {
    throw new SockitError('USAGE', '--exec-allow goes with --tutorial-exec');
  }
  if (options.tutorialExec) return tutorialExecMode(options.execAllow);
  if (options.tutorialUpload !== undefined) return tutorialUploadMode(options.tutorialUpload);
  const spec = execSpecFrom(options.exec, options.shExec);
  if (spec) return { kind: 'exec', spec };
  if (options.broker) return { kind: 'broker' };
  if (options.chat) return { kind: 'chat' };
  if (options.echo !== undefined) {
    // A bare --echo is `none`; a value was checked by its argParser.
    const transform = options.echo === true ? 'none' : options.echo;
    return { kind: 'echo', transform, greeting: options.greeting };
  }
  return { kind: 'relay' };
}

async function runListenCommand(addressText: string, options: ListenCliOptions): Promise<void> {
  const mode = await modeFrom(options);
  const address = parseRawAddress(addressText, options.udp);
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new SockitError('USAGE', '--cert and --key go together');
  }
  const [{ runListen }, { AccessList }, { readCertificateFiles }] = await Promise.all([
    import('../../raw/listen.js'),
    import('../../raw/cidr.js'),
    import('../../transport/self-signed.js'),
  ]);
  if (options.bus !== undefined && mode.kind !== 'broker' && mode.kind !== 'chat') {
    throw new SockitError(
      'USAGE',
      '--bus shares a --broker or --chat with other servers: it goes with one of them',
    );
  }
  const maxConnections = options.maxConns ?? 100;
  const bus = await openBus(options, createLogger({ level: options.verbose ? 'info' : 'warn' }));
  const signal = untilSignal();
  const error = await runListen({
    bus,
    address,
    mode,
    keepOpen: options.keepOpen ?? false,
    maxConnections,
    access: AccessList.fromOptions(options.allow ?? [], options.deny ?? []),
    shutdown: options.shutdown,
    sendOnly: options.sendOnly ?? false,
    recvOnly: options.recvOnly ?? false,
    idleTimeoutMs: options.idleTimeout,
    hex: options.hex ?? false,
    logFile: options.output,
    verbose: options.verbose ?? false,
    tls: options.cert === undefined ? undefined : readCertificateFiles(options.cert, options.key!),
    stateDir: options.stateDir,
    signal,
  }).finally(() => bus?.close());
  if (error) reportError(error);
  // Standard input may still hold the event loop (a terminal); the session is over, so leave.
  process.exit(error ? exitCodeFor(error) : 0);
}
