/**
 * `node build/bench/markdown.js [bench/results/latest.json] [SUITE…]`: prints a run's figures
 * as Markdown tables, one section per suite, for pasting into docs/benchmarks.md.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatNumber, measurementRows, ratioRows } from './lib/table.js';
import type { BenchResults } from './report.js';

const args = process.argv.slice(2);
const file = args[0]?.endsWith('.json')
  ? args.shift()!
  : fileURLToPath(new URL('../../bench/results/latest.json', import.meta.url));
const results = JSON.parse(readFileSync(file, 'utf8')) as BenchResults;
const wanted = new Set(args);

const cell = (value: unknown): string =>
  value === undefined
    ? ''
    : typeof value === 'number'
      ? formatNumber(value)
      : String(value).replaceAll('|', '\\|');

function table({ header, rows }: { header: string[]; rows: string[][] }): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => ' --- ').join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

const { machine } = results;
const out: string[] = [
  `Run of ${results.date}: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}; ` +
    `Node ${machine.node}, Python ${machine.python ?? 'not found'}.`,
];
for (const suite of results.suites) {
  if (wanted.size > 0 && !wanted.has(suite.name)) continue;
  out.push('', `### ${suite.name}: figures`, '');
  out.push(table(measurementRows(suite.measurements, cell)));
  if (suite.ratios.length > 0) {
    out.push('', `### ${suite.name}: ratios`, '');
    out.push(table(ratioRows(suite.ratios, cell, '≥')));
  }
  for (const note of suite.notes) out.push('', `Note: ${note}`);
}
process.stdout.write(`${out.join('\n')}\n`);
