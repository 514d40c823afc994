import { SockitError } from '../../errors.js';

/** A held upload lock: mark it when the upload starts winding down, release it when done. */
export interface UploadLock {
  /** The upload is stopping: a new upload may wait for the release instead of being refused. */
  markReleasing(): void;
  release(): void;
}

interface Holder {
  abort: (reason: SockitError) => void;
  releasing: boolean;
  released: Promise<void>;
}

/**
 * One upload at a time per target file, so two puts to one name never write one partial file
 * together. A second plain put is refused with CONFLICT; a `resume` takes over (the first
 * upload may belong to a client that died without the server noticing yet); an upload that is
 * already stopping is simply waited for.
 */
export class UploadLocks {
  readonly #held = new Map<string, Holder>();

  async acquire(
    key: string,
    options: { takeover: boolean; abort: (reason: SockitError) => void; path: string },
  ): Promise<UploadLock> {
    for (;;) {
      const holder = this.#held.get(key);
      if (holder === undefined) break;
      if (!holder.releasing) {
        if (!options.takeover) {
          throw new SockitError(
            'CONFLICT',
            `another upload to ${JSON.stringify(options.path)} is in progress: wait for it, or resume to take it over`,
          );
        }
        holder.abort(new SockitError('CONFLICT', 'another client resumed this upload and took it over'));
        holder.releasing = true;
      }
      await holder.released;
    }
    let release!: () => void;
    const holder: Holder = {
      abort: options.abort,
      releasing: false,
      released: new Promise<void>((resolve) => {
        release = resolve;
      }),
    };
    this.#held.set(key, holder);
    return {
      markReleasing: () => {
        holder.releasing = true;
      },
      release: () => {
        if (this.#held.get(key) === holder) this.#held.delete(key);
        release();
      },
    };
  }
}
