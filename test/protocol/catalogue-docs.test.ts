import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CATALOGUE, FrameCatalogue } from '../../src/protocol/catalogue.js';
import { CATALOGUE_MARKERS, catalogueMarkdown } from '../../src/protocol/catalogue-markdown.js';
import { declareFrames } from '../../src/protocol/schema.js';

const docs = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

/** The generated block of docs/protocol.md, between its markers. */
function documentedTables(text: string): string {
  const begin = text.indexOf(CATALOGUE_MARKERS.begin);
  const end = text.indexOf(CATALOGUE_MARKERS.end);
  assert.ok(begin >= 0 && end > begin, 'docs/protocol.md has the frame catalogue markers');
  return text.slice(begin + CATALOGUE_MARKERS.begin.length, end).trim();
}

test('docs/protocol.md lists exactly the frame catalogue (run `npm run docs:protocol` after a change)', () => {
  assert.equal(documentedTables(docs), catalogueMarkdown(CATALOGUE));
});

test('every declared frame type has its row in docs/protocol.md', () => {
  const rows = new Set([...docs.matchAll(/^\| `([a-z][a-z0-9-]*)` — /gm)].map((match) => match[1]));
  for (const entry of CATALOGUE.entries()) assert.ok(rows.has(entry.type), `${entry.type} has no row`);
});

test('the check fails on drift: a changed bound changes the tables', () => {
  const drifted = new FrameCatalogue([
    ...[...CATALOGUE.entries()].map((entry) => (entry.type === 'signal' ? {} : { [entry.type]: entry.spec })),
    declareFrames({
      signal: {
        ...CATALOGUE.get('signal')!.spec,
        fields: { signal: { kind: 'enum', values: ['SIGINT'] } },
      },
    }),
  ]);
  assert.notEqual(catalogueMarkdown(drifted), catalogueMarkdown(CATALOGUE));
});

test('every request lists its final frames among its replies, and every named frame is declared', () => {
  for (const { type, spec } of CATALOGUE.entries()) {
    for (const final of spec.final ?? []) assert.ok(spec.replies?.includes(final), `${type}: final ${final}`);
    for (const named of [...(spec.replies ?? []), ...(spec.followUps ?? [])]) {
      assert.ok(CATALOGUE.get(named), `${type} names ${named}, which is not declared`);
    }
    for (const followUp of spec.followUps ?? []) {
      assert.equal(CATALOGUE.get(followUp)!.spec.role, 'follow-up', `${type}: ${followUp} is a follow-up`);
    }
    if (spec.role === 'request') assert.equal(spec.id, 'required', `${type} opens a request: it needs an id`);
    if (spec.from !== 'server')
      assert.ok(spec.phases?.length, `${type} is sent by clients: it names its phases`);
  }
});
