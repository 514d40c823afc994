/**
 * An AbortSignal that fires on the first SIGINT or SIGTERM, with the signal's name as its
 * reason, so a command can shut down gracefully; a second signal exits at once (130).
 */
export function untilSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(signal);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return controller.signal;
}
