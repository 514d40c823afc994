/**
 * `npm run bench [-- SUITE…]`: runs the benchmark suites (all, or those named), prints each
 * suite's measurements and ratios (✓/✗ against the issue's targets) with the machine and date,
 * and writes everything to bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { codecSuite } from './codec.js';
import { echoSuite } from './echo.js';
import { execSuite } from './exec.js';
import { filesSuite } from './files.js';
import { forwardSuite } from './forward.js';
import { hostileSuite } from './hostile.js';
import { findPython } from './lib/servers.js';
import { formatNumber, measurementRows, ratioRows, renderTable, targetMet } from './lib/table.js';
import { rawSuite } from './raw.js';
import type { BenchResults, BenchSuite, Machine, SuiteResult } from './report.js';
import { scaleSuite } from './scale.js';
import { shellSuite } from './shell.js';
import { syncSuite } from './sync.js';
import { tunnelSuite } from './tunnel.js';

/** Every suite `npm run bench` knows, in run order. Add yours with one line. */
const SUITES: BenchSuite[] = [
  echoSuite,
  codecSuite,
  execSuite,
  filesSuite,
  syncSuite,
  rawSuite,
  forwardSuite,
  hostileSuite,
  shellSuite,
  tunnelSuite,
  scaleSuite,
];

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

function describeMachine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    python: findPython()?.version,
    os: `${process.platform} ${release()} ${process.arch}`,
  };
}

function selectSuites(names: string[]): BenchSuite[] {
  if (names.length === 0) return SUITES;
  const unknown = names.filter((name) => !SUITES.some((suite) => suite.name === name));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown suite ${unknown.join(', ')}; known suites: ${SUITES.map((suite) => suite.name).join(', ')}\n`,
    );
    process.exit(2);
  }
  return SUITES.filter((suite) => names.includes(suite.name));
}

async function runSuite(suite: BenchSuite): Promise<SuiteResult> {
  const result: SuiteResult = { name: suite.name, measurements: [], ratios: [], notes: [], seconds: 0 };
  const started = performance.now();
  process.stdout.write(`\n== ${suite.name} ==\n`);
  try {
    await suite.run({
      record(measurement) {
        result.measurements.push(measurement);
        // A progress line as each case finishes, so a long suite is visibly alive.
        process.stdout.write(
          `  ${measurement.case} | ${measurement.subject}: ${formatNumber(measurement.value)} ${measurement.unit}\n`,
        );
      },
      ratio(ratio) {
        result.ratios.push(ratio);
      },
      note(text) {
        result.notes.push(text);
      },
    });
  } catch (error) {
    result.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
  }
  result.seconds = Math.round((performance.now() - started) / 100) / 10;
  printSuite(result);
  return result;
}

/** A figure as a terminal cell: numbers formatted, text as is. */
const cell = (value: string | number | undefined): string =>
  value === undefined ? '' : typeof value === 'number' ? formatNumber(value) : value;

function printSuite(result: SuiteResult): void {
  if (result.measurements.length > 0) {
    const { header, rows } = measurementRows(result.measurements, cell);
    process.stdout.write(`\n${renderTable(header, rows)}\n`);
  }
  if (result.ratios.length > 0) {
    const { header, rows } = ratioRows(result.ratios, cell, '>=');
    process.stdout.write(`\n${renderTable(header, rows)}\n`);
  }
  for (const note of result.notes) process.stdout.write(`note: ${note}\n`);
  if (result.error) process.stdout.write(`suite ${result.name} FAILED: ${result.error}\n`);
  process.stdout.write(`(${result.name}: ${result.seconds} s)\n`);
}

async function main(): Promise<void> {
  const suites = selectSuites(process.argv.slice(2).filter((arg) => !arg.startsWith('-')));
  const machine = describeMachine();
  const date = new Date().toISOString();
  process.stdout.write(
    `sockit benchmarks — ${date}\n` +
      `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}\n` +
      `node ${machine.node}, python ${machine.python ?? 'not found'}\n`,
  );
  const started = performance.now();
  const results: SuiteResult[] = [];
  for (const suite of suites) results.push(await runSuite(suite));
  const seconds = Math.round((performance.now() - started) / 100) / 10;

  const missed = results.flatMap((r) => r.ratios).filter((r) => targetMet(r) === false);
  process.stdout.write(
    `\nall done in ${seconds} s; ${missed.length === 0 ? 'every target met' : `${missed.length} target(s) missed`}\n`,
  );
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}latest.json`;
  const output: BenchResults = { date, machine, seconds, suites: results };
  writeFileSync(file, `${JSON.stringify(output, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
  // A broken suite fails the command; a missed target is a figure to read, not a crash.
  process.exitCode = results.some((r) => r.error) ? 1 : 0;
}

await main();
