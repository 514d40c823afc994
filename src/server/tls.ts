import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { type ListenTarget, servesTls } from '../transport/address.js';
import type { TlsServerCredentials } from '../transport/listen.js';
import { loadOrCreateCertificate } from '../transport/self-signed.js';

/**
 * The certificate a server uses on its `tls://` addresses: the operator's, or the self-signed
 * pair kept in `<stateDir>/tls` (made once). Undefined when no address needs TLS.
 */
export function serverTls(
  addresses: readonly ListenTarget[],
  given: TlsServerCredentials | undefined,
  stateDir: string,
): { credentials: TlsServerCredentials; fingerprint: string } | undefined {
  if (!addresses.some(servesTls)) return undefined;
  if (given) return { credentials: given, fingerprint: new X509Certificate(given.cert).fingerprint256 };
  const stored = loadOrCreateCertificate(join(stateDir, 'tls'));
  return { credentials: { cert: stored.certPem, key: stored.keyPem }, fingerprint: stored.fingerprint256 };
}
