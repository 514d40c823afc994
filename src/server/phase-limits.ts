import type { FrameHeader } from '../protocol/frame.js';
import type { Limits } from './limits.js';

/** How far a connection is in its handshake, as far as its memory limits go. */
export type TrustPhase = 'handshake' | 'anonymous' | 'authenticated';

/**
 * The largest body a frame may announce in each phase, checked before the body is buffered:
 * `hello` and `auth` carry everything in their headers, so no body before the handshake is
 * done; a client using open services without a token gets `preAuthBodyBytes`; an authenticated
 * one the full `maxBodyBytes`. Per-type limits (a frame catalogue) would plug in here.
 */
export function phaseBodyLimit(phase: TrustPhase, header: FrameHeader, limits: Limits): number {
  switch (phase) {
    case 'handshake':
      return 0;
    case 'anonymous':
      return header.type === 'auth' ? 0 : Math.min(limits.preAuthBodyBytes, limits.maxBodyBytes);
    case 'authenticated':
      return limits.maxBodyBytes;
  }
}
