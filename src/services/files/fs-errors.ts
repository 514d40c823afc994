import { SockitError } from '../../errors.js';

/**
 * Turns a file-system error into a wire error that says what went wrong with which path,
 * without leaking the server's absolute paths. Unknown errors pass through (they become
 * INTERNAL with the details in the server log).
 */
export function fsFailure(error: unknown, path: string): unknown {
  if (error instanceof SockitError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const shown = JSON.stringify(path);
  switch (code) {
    case 'ENOENT':
      return new SockitError(
        'NOT_FOUND',
        `${shown} does not exist (list the directory to see what is there)`,
      );
    case 'ENOTDIR':
      return new SockitError('NOT_FOUND', `${shown}: a part of the path is a file, not a directory`);
    case 'EISDIR':
      return new SockitError('BAD_REQUEST', `${shown} is a directory: use list, or get -r`);
    case 'EEXIST':
      return new SockitError('CONFLICT', `${shown} already exists`);
    case 'ENOTEMPTY':
      return new SockitError(
        'CONFLICT',
        `${shown} is a directory that is not empty: remove its contents first (rm -r)`,
      );
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new SockitError('FORBIDDEN', `${shown}: the server has no permission there`);
    case 'ELOOP':
      return new SockitError(
        'FORBIDDEN',
        `${shown}: too many symbolic links, or a link where none is allowed`,
      );
    case 'ENAMETOOLONG':
      return new SockitError('FORBIDDEN', `${shown}: the name is too long for the server's file system`);
    case 'ENOSPC':
    case 'EDQUOT':
      return new SockitError(
        'UNAVAILABLE',
        `the server's disk is full while writing ${shown}; free space and resume`,
      );
    default:
      return error;
  }
}
