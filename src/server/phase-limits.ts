import type { TrustPhase } from '../protocol/schema.js';
import type { FrameRoute } from './frame-routes.js';
import type { Limits } from './limits.js';

export type { TrustPhase } from '../protocol/schema.js';

/**
 * The largest body a frame may announce, checked by the decoder right after its header and
 * before a byte of its body is buffered: the frame type's declared limit (`hello`, `auth`:
 * none; `data`: 1 MiB; a type the phase does not accept: none), capped by the phase's. Nothing
 * has a body before the handshake is done; a client using open services without a token gets
 * `preAuthBodyBytes`; an authenticated one the full `maxBodyBytes`. A type nobody declared
 * (`route` undefined) gets the phase's limit: its UNSUPPORTED answer comes once the frame is whole.
 */
export function phaseBodyLimit(phase: TrustPhase, route: FrameRoute | undefined, limits: Limits): number {
  const ceiling = phaseCeiling(phase, limits);
  return route === undefined ? ceiling : Math.min(route.bodyLimit[phase], ceiling);
}

function phaseCeiling(phase: TrustPhase, limits: Limits): number {
  switch (phase) {
    case 'handshake':
      return 0;
    case 'anonymous':
      return Math.min(limits.preAuthBodyBytes, limits.maxBodyBytes);
    case 'authenticated':
      return limits.maxBodyBytes;
  }
}
