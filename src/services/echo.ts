import { checkChoice } from '../options.js';
import { ECHO_TRANSFORMS, type EchoTransform, upperAscii, upperAsciiInPlace } from '../protocol/transform.js';
import type { Service } from '../server/service.js';

export { ECHO_TRANSFORMS, type EchoTransform, upperAscii };

/** The reply header, shared: replies get their id and size when encoded, never by mutation. */
const ECHO_REPLY = Object.freeze({ type: 'echo' });

export interface EchoOptions {
  transform?: EchoTransform;
}

/** Echo: `{"type":"echo","id":N}` + body comes back with the same id, through the transform. */
export function echoService(options: EchoOptions = {}): Service {
  const transform = checkChoice(options.transform ?? 'none', 'echo transform', ECHO_TRANSFORMS);
  // Changed as it is encoded: the upper-cased reply needs no buffer of its own.
  const edit = transform === 'upper' ? upperAsciiInPlace : undefined;
  return {
    name: 'echo',
    requests: {
      echo(request) {
        request.reply(ECHO_REPLY, request.body, edit);
      },
    },
  };
}
