/**
 * The first half of the path jail: a client's path string becomes a list of plain names, or a
 * FORBIDDEN error. Pure string work; `jail.ts` then resolves the names against the disk.
 */
import { SockitError } from '../../errors.js';
import { MAX_NAME_BYTES, MAX_PATH_BYTES, RESERVED_PREFIX } from '../../protocol/files.js';

/** Control characters (NUL included) have no business in a file name sent over the wire. */
const CONTROL = /[\u0000-\u001f\u007f]/;
/** `C:`, `c:foo`: a drive letter makes a path absolute on Windows. */
const DRIVE = /^[A-Za-z]:/;

/**
 * Splits a client path into names. Refuses (`FORBIDDEN`) every way out of the root: `..`,
 * absolute paths, drive letters, backslashes (a separator on Windows, an escape trick
 * elsewhere), NUL and other control characters, names over 255 bytes, paths over 4096 bytes,
 * and the reserved temporary names. `.` and empty segments (`a//b`, a trailing `/`) are
 * dropped. `allowRoot` accepts `""` and `.` for the root itself (list, stat).
 */
export function parseRemotePath(path: unknown, options: { allowRoot?: boolean } = {}): string[] {
  if (typeof path !== 'string') {
    throw new SockitError('BAD_REQUEST', 'field "path" must be a string, e.g. "dir/a.bin"');
  }
  const forbid = (why: string): never => {
    throw new SockitError('FORBIDDEN', `path ${JSON.stringify(path)} is refused: ${why}`);
  };
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) forbid(`longer than ${MAX_PATH_BYTES} bytes`);
  if (CONTROL.test(path)) forbid('it contains a NUL or control character');
  if (path.includes('\\')) forbid('backslashes are not path separators here; use "/"');
  if (path.startsWith('/')) forbid('absolute paths are not allowed; give a path relative to the root');
  if (DRIVE.test(path)) forbid('drive letters are not allowed; give a path relative to the root');
  const names: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') forbid('".." would leave the root');
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) forbid(`a name is longer than ${MAX_NAME_BYTES} bytes`);
    if (segment.startsWith(RESERVED_PREFIX)) forbid(`names starting with "${RESERVED_PREFIX}" are reserved`);
    names.push(segment);
  }
  if (names.length === 0 && !options.allowRoot) {
    throw new SockitError('BAD_REQUEST', 'the path names no file: give a path like "dir/a.bin"');
  }
  return names;
}

/** The canonical text of a list of names: `dir/a.bin`, `""` for the root. */
export function joinRemotePath(names: readonly string[]): string {
  return names.join('/');
}
