/** The layering of docs/architecture.md, checked on the source: who may import whom. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const LEAVES = ['errors', 'log', 'native', 'options', 'state', 'version'];

/** Layer → layers it may import (besides itself and the leaves). */
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  bus: [],
  metrics: ['server', 'bus'],
  storage: ['protocol'],
  transport: ['protocol'],
  server: ['transport', 'protocol', 'services/echo'],
  services: ['server', 'transport', 'storage', 'protocol', 'bus'],
  client: ['transport', 'storage', 'protocol'],
  raw: ['transport', 'server', 'storage', 'protocol/transform', 'protocol/files', 'bus'],
  cli: ['*'],
};
/** Imports no service may make even though its layer is allowed: services never parse or encode bytes. */
const FORBIDDEN_FOR_SERVICES = ['protocol/decoder', 'protocol/encoder'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

/** `protocol/decoder` for src/protocol/decoder.ts, `errors` for src/errors.ts. */
function moduleOf(file: string): string {
  return relative(SRC, file).replace(/\.(ts|js)$/, '');
}

test('every import in src/ follows the layering of docs/architecture.md', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = moduleOf(file);
    const layer = from.split('/')[0]!;
    if (!(layer in ALLOWED)) continue; // index.ts and the leaves
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/from '(\.[^']+)'/g)) {
      const target = moduleOf(resolve(dirname(file), match[1]!));
      const targetLayer = target.split('/')[0]!;
      if (targetLayer === layer || LEAVES.includes(target)) continue;
      const allowed = ALLOWED[layer]!;
      const ok = allowed.includes('*') || allowed.some((rule) => target === rule || targetLayer === rule);
      if (!ok) violations.push(`${from} imports ${target}`);
      if (layer === 'services' && FORBIDDEN_FOR_SERVICES.includes(target))
        violations.push(`${from} imports ${target}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('protocol/ and storage/ open no sockets, and protocol/ touches no files', () => {
  for (const file of sourceFiles(join(SRC, 'protocol'))) {
    assert.doesNotMatch(
      readFileSync(file, 'utf8'),
      /from 'node:(net|tls|dgram|fs|fs\/promises|child_process)'/,
      file,
    );
  }
  for (const file of sourceFiles(join(SRC, 'storage'))) {
    assert.doesNotMatch(readFileSync(file, 'utf8'), /from 'node:(net|tls|dgram|child_process)'/, file);
  }
});
