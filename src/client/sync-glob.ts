/**
 * The globs of `sync --include/--exclude`, rsync's way: `*` and `?` stay inside one path segment,
 * `**` crosses segments, a pattern without `/` matches the last segment at any depth (`*.tmp`
 * excludes `a.tmp` and `sub/b.tmp`), one with `/` is anchored at the root, and a trailing `/`
 * matches directories only (an include of `*` plus `/` keeps every directory). The rules are
 * tried in the order given and the first that matches decides; a path no rule matches is
 * included. Written here because node's path.matchesGlob is still experimental (a warning on
 * stderr) on Node 20.
 */

/** One `--include` or `--exclude`, in command-line order. */
export interface FilterRule {
  action: 'include' | 'exclude';
  pattern: string;
}

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

/**
 * Whether `path` (a directory when `isDir`) is left out: the first rule that matches decides.
 * It says nothing about ancestors; a walk that skips excluded directories handles those.
 */
export function filterRules(rules: readonly FilterRule[]): (path: string, isDir: boolean) => boolean {
  const compiled = rules.map((rule) => {
    const dirOnly = rule.pattern.length > 1 && rule.pattern.endsWith('/');
    return {
      exclude: rule.action === 'exclude',
      dirOnly,
      matches: globMatcher(dirOnly ? rule.pattern.slice(0, -1) : rule.pattern),
    };
  });
  return (path, isDir) => {
    for (const rule of compiled) {
      if (rule.dirOnly && !isDir) continue;
      if (rule.matches(path)) return rule.exclude;
    }
    return false;
  };
}
