/**
 * The globs of `sync --exclude`, rsync's way: `*` and `?` stay inside one path segment, `**`
 * crosses segments, and a pattern without `/` matches the last segment at any depth (`*.tmp`
 * excludes `a.tmp` and `sub/b.tmp`). Written here because node's path.matchesGlob is still
 * experimental (a warning on stderr) on Node 20.
 */

/** A test for `/`-separated relative paths, from one glob. */
export function globMatcher(pattern: string): (path: string) => boolean {
  const anchored = pattern.includes('/');
  let source = '';
  for (let at = 0; at < pattern.length; at++) {
    const char = pattern[at]!;
    if (char === '*' && pattern[at + 1] === '*') {
      source += '.*';
      at++;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  const regex = new RegExp(anchored ? `^${source.replace(/^\//, '')}$` : `(^|/)${source}$`);
  return (path) => regex.test(path);
}

/** True when `path` matches any of `patterns`. */
export function excludedBy(patterns: readonly string[]): (path: string) => boolean {
  const matchers = patterns.map(globMatcher);
  return (path) => matchers.some((matches) => matches(path));
}
