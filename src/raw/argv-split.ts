import { SockitError } from '../errors.js';

/**
 * Splits a command line into argv the way a shell splits words, and does nothing else: `'…'`
 * keeps everything literally, `"…"` keeps everything but `\"` and `\\`, a backslash outside
 * quotes escapes the next character, and runs of blanks separate words. No variables, globs,
 * pipes, redirections or `;` — those characters are plain bytes of an argument, since no shell
 * ever sees them. An unfinished quote or a trailing backslash is BAD_REQUEST.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let index = 0; index < line.length; index++) {
    const char = line[index]!;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else word += char;
      continue;
    }
    if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === '\\' && (line[index + 1] === '"' || line[index + 1] === '\\')) word += line[++index];
      else word += char;
      continue;
    }
    if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === '\\') {
      if (index + 1 >= line.length)
        throw new SockitError('BAD_REQUEST', 'the command ends with a lone backslash');
      word += line[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new SockitError('BAD_REQUEST', `the command has an unclosed ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}
