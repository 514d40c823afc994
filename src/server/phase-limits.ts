import type { FrameCatalogue } from '../protocol/catalogue.js';
import type { FrameHeader } from '../protocol/frame.js';
import type { TrustPhase } from '../protocol/schema.js';
import type { Limits } from './limits.js';

export type { TrustPhase } from '../protocol/schema.js';

/**
 * The largest body a frame may announce, checked by the decoder right after its header and
 * before a byte of its body is buffered: the frame type's declared limit (`hello`, `auth`:
 * none; `data`: 1 MiB; a type the phase does not accept: none), capped by the phase's. Nothing
 * has a body before the handshake is done; a client using open services without a token gets
 * `preAuthBodyBytes`; an authenticated one the full `maxBodyBytes`.
 */
export function phaseBodyLimit(
  phase: TrustPhase,
  header: FrameHeader,
  limits: Limits,
  catalogue: FrameCatalogue,
): number {
  return catalogue.bodyLimit(header.type, phase, phaseCeiling(phase, limits));
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
