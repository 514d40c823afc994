import { errnoMeaning, errnoOf, SockitError } from '../../errors.js';

/** Wordings that say what to do next; the code always comes from the errno table. */
const HINTS: Record<string, (shown: string) => string> = {
  ENOENT: (shown) => `${shown} does not exist (list the directory to see what is there)`,
  ENOTDIR: (shown) => `${shown}: a part of the path is a file, not a directory`,
  EISDIR: (shown) => `${shown} is a directory: use list, or get -r`,
  ENOTEMPTY: (shown) => `${shown} is a directory that is not empty: remove its contents first (rm -r)`,
  EACCES: (shown) => `${shown}: the server has no permission there`,
  EPERM: (shown) => `${shown}: the server has no permission there`,
  EROFS: (shown) => `${shown}: the server has no permission there`,
  ELOOP: (shown) => `${shown}: too many symbolic links, or a link where none is allowed`,
  ENAMETOOLONG: (shown) => `${shown}: the name is too long for the server's file system`,
  ENOSPC: (shown) => `the server's disk is full while writing ${shown}; free space and resume`,
  EDQUOT: (shown) => `the server's disk is full while writing ${shown}; free space and resume`,
};

/** Errnos that are not about the path (out of memory, a socket reset) stay unknown: INTERNAL. */
const PATH_CODES = new Set(['NOT_FOUND', 'BAD_REQUEST', 'CONFLICT', 'FORBIDDEN', 'UNAVAILABLE']);

/**
 * Turns a file-system error into a wire error that says what went wrong with which path,
 * without leaking the server's absolute paths. Unknown errors pass through (they become
 * INTERNAL with the details in the server log).
 */
export function fsFailure(error: unknown, path: string): unknown {
  if (error instanceof SockitError) return error;
  const meaning = errnoMeaning(error);
  if (!meaning || !PATH_CODES.has(meaning.code)) return error;
  const shown = JSON.stringify(path);
  const hint = HINTS[errnoOf(error)!];
  return new SockitError(meaning.code, hint ? hint(shown) : `${shown}: ${meaning.reason}`);
}
