// Rewrites the generated "Frame catalogue" tables of docs/protocol.md from the built catalogue
// (`npm run docs:protocol`); test/protocol/catalogue-docs.test.ts fails when they differ.
import { readFileSync, writeFileSync } from 'node:fs';
import { CATALOGUE } from '../build/src/protocol/catalogue.js';
import { CATALOGUE_MARKERS, catalogueMarkdown } from '../build/src/protocol/catalogue-markdown.js';

const path = new URL('../docs/protocol.md', import.meta.url);
const text = readFileSync(path, 'utf8');
const begin = text.indexOf(CATALOGUE_MARKERS.begin);
const end = text.indexOf(CATALOGUE_MARKERS.end);
if (begin < 0 || end < begin) {
  console.error(`docs/protocol.md has no ${CATALOGUE_MARKERS.begin} … ${CATALOGUE_MARKERS.end} block`);
  process.exit(1);
}
const generated = `${CATALOGUE_MARKERS.begin}\n\n${catalogueMarkdown(CATALOGUE)}\n\n`;
writeFileSync(path, text.slice(0, begin) + generated + text.slice(end));
console.log('docs/protocol.md: frame catalogue tables written');
