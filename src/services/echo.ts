import { type EchoTransform, upperAscii } from '../protocol/transform.js';
import type { Service } from '../server/service.js';

export { type EchoTransform, upperAscii };

/** The reply header, shared: replies get their id and size when encoded, never by mutation. */
const ECHO_REPLY = Object.freeze({ type: 'echo' });

export interface EchoOptions {
  transform?: EchoTransform;
}

/** Echo: `{"type":"echo","id":N}` + body comes back with the same id, through the transform. */
export function echoService(options: EchoOptions = {}): Service {
  const transform = options.transform ?? 'none';
  if (transform !== 'none' && transform !== 'upper') {
    throw new TypeError(`echo transform must be "none" or "upper", got "${String(transform)}"`);
  }
  return {
    name: 'echo',
    requests: {
      echo(request) {
        request.reply(ECHO_REPLY, transform === 'upper' ? upperAscii(request.body) : request.body);
      },
    },
  };
}
