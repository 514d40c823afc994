/**
 * Group commit for directory fsyncs. Publishing a file (a rename) is durable only once its
 * directory is fsynced; with many small files arriving at once, one fsync per file is most of
 * their cost. Every caller still waits for an fsync that *started after* its own rename, so
 * what it reports as published is on disk, but callers that arrive while one fsync runs share
 * the next one: N renames into one directory cost about two fsyncs, not N.
 */
import type { FileHandle } from 'node:fs/promises';

/** The next fsync of a directory: it runs on its first joiner's handle, open until the round ends. */
interface Round {
  done: Promise<void>;
  start: () => void;
}

/** Directory fsyncs shared between the publishes of one server. */
export class DirectorySyncs {
  /** Per directory (its `dev:ino` key): the fsync running now and the one waiting to start. */
  readonly #running = new Map<string, { current: Promise<void>; next?: Round }>();

  /** Resolves once an fsync of the directory that began after this call has finished. */
  sync(key: string, handle: FileHandle): Promise<void> {
    const state = this.#running.get(key);
    if (state === undefined) {
      const current = this.#run(key, handle);
      this.#running.set(key, { current });
      return current;
    }
    if (state.next) return state.next.done;
    let start!: () => void;
    const done = new Promise<void>((resolve) => {
      start = resolve;
    }).then(() => this.#run(key, handle));
    state.next = { done, start };
    return done;
  }

  async #run(key: string, handle: FileHandle): Promise<void> {
    try {
      // A file system that cannot fsync a directory (some network ones) has nothing to make durable.
      await handle.sync().catch(() => {});
    } finally {
      const state = this.#running.get(key);
      const next = state?.next;
      if (next && state) {
        state.current = next.done;
        state.next = undefined;
        next.start();
      } else {
        this.#running.delete(key);
      }
    }
  }
}
