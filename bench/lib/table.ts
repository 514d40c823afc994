/**
 * A run's figures as table rows (shared by the terminal and the Markdown output) and plain-text
 * tables for the terminal: columns padded to their widest cell.
 */
import type { Measurement, Ratio } from '../report.js';

/** Formats a figure with thousands separators and fewer decimals the larger it is. */
export function formatNumber(value: number): string {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Renders rows under a header; numeric-looking cells are right-aligned. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const numeric = /^[-+]?[\d,.]+( ?[%x])?$/;
  const line = (cells: string[]): string =>
    cells
      .map((cell, column) =>
        numeric.test(cell) ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!),
      )
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

interface Rows {
  header: string[];
  rows: string[][];
}

/** Measurements as rows, with one column for every `extra` key any of them has. */
export function measurementRows(
  measurements: Measurement[],
  cell: (value: string | number | undefined) => string,
): Rows {
  const extras = [...new Set(measurements.flatMap((m) => Object.keys(m.extra ?? {})))];
  return {
    header: ['case', 'subject', 'value', 'unit', ...extras],
    rows: measurements.map((m) => [
      cell(m.case),
      cell(m.subject),
      cell(m.value),
      cell(m.unit),
      ...extras.map((key) => cell(m.extra?.[key])),
    ]),
  };
}

/** Whether a ratio reaches its target; undefined when it has none. */
export function targetMet(ratio: Ratio): boolean | undefined {
  return ratio.target === undefined ? undefined : ratio.value >= ratio.target;
}

/** Ratios as rows; `atLeast` prefixes a target (`>=` on the terminal, `≥` in Markdown). */
export function ratioRows(ratios: Ratio[], cell: (value: string | number) => string, atLeast: string): Rows {
  return {
    header: ['case', 'ratio', 'value', 'target', 'met'],
    rows: ratios.map((r) => {
      const met = targetMet(r);
      return [
        cell(r.case),
        cell(r.label),
        cell(r.value),
        r.target === undefined ? '' : `${atLeast} ${r.target}`,
        met === undefined ? '' : met ? '✓' : '✗',
      ];
    }),
  };
}
