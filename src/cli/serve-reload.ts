import type { Logger } from '../log.js';
import type { Server } from '../server/server.js';
import { serverTls } from '../server/tls.js';
import { readTokenFile } from '../state.js';
import type { ListenTarget } from '../transport/address.js';
import { readCertificateFiles } from '../transport/self-signed.js';

/** Where `sockit serve` found its certificate and token: read again on each reload. */
export interface CredentialSources {
  targets: readonly ListenTarget[];
  /** `--cert` and `--key`; else the self-signed pair in `<stateDir>/tls`. */
  certFiles?: { cert: string; key: string } | undefined;
  stateDir: string;
}

/**
 * SIGHUP (`systemctl reload`) reads certificate, key and token again and hands them to the
 * server, which keeps every open connection (see `Server.reload`). Anything that does not load
 * (a missing file, a certificate that is not PEM or not the key's) keeps the old ones and logs
 * one line that says why. Call it first thing: without a handler SIGHUP ends the process, and a
 * SIGHUP that comes before the server listens is applied once it does (`reloadWith`).
 */
export function onHangup(log: Logger): { reloadWith(server: Server, sources: CredentialSources): void } {
  let reload: (() => void) | undefined;
  let pending = false;
  process.on('SIGHUP', () => {
    if (reload) reload();
    else pending = true;
  });
  return {
    reloadWith(server, sources) {
      reload = () => reloadCredentials(server, sources, log);
      if (pending) reload();
    },
  };
}

function reloadCredentials(server: Server, sources: CredentialSources, log: Logger): void {
  try {
    const token = server.tokenFile === undefined ? undefined : readTokenFile(server.tokenFile);
    const tls =
      server.tlsFingerprint === undefined
        ? undefined
        : sources.certFiles
          ? readCertificateFiles(sources.certFiles.cert, sources.certFiles.key)
          : serverTls(sources.targets, undefined, sources.stateDir)?.credentials;
    server.reload({ ...(tls ? { tls } : {}), ...(token !== undefined ? { token } : {}) });
    log.info('reloaded certificate and token (SIGHUP)', {
      ...(server.tlsFingerprint ? { fingerprint: server.tlsFingerprint } : {}),
    });
  } catch (error) {
    log.error('reload failed; keeping the old certificate and token', { error: (error as Error).message });
  }
}
