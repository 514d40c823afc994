import { spawnSync } from 'node:child_process';

/** Runs `promtool check metrics` on a scrape (it reads stdin and exits at once). */
export function promtool(scrape: string): { code: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], {
    input: scrape,
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}
