import { type EchoTransform, upperAscii } from '../protocol/transform.js';
import type { Service } from '../server/service.js';

export { type EchoTransform, upperAscii };

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
        request.reply({ type: 'echo' }, transform === 'upper' ? upperAscii(request.body) : request.body);
      },
    },
  };
}
