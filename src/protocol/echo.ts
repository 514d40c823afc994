/** The echo service's one frame (docs/protocol.md section 4, "echo"). */
import { declareFrames } from './schema.js';

/** `echo` asks, `echo` answers: the body comes back through the server's transform. */
export const ECHO_FRAMES = declareFrames({
  echo: {
    service: 'echo',
    role: 'request',
    from: 'both',
    id: 'required',
    body: 'max',
    phases: ['anonymous', 'authenticated'],
    replies: ['echo'],
    final: ['echo'],
    doc: 'the body, sent back through the server transform (`none` or `upper`)',
    fields: {},
  },
});
