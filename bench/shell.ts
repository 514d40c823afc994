/**
 * The shell suite (issue 15), fan-out part: `true` on 200 addresses, wall time, one
 * `sockit exec --hosts FILE --par 50` process against `xargs -P 50` of one `sockit exec` process
 * per address, in the same run and against the same server (one in-process `serve()` on 200
 * loopback ports). Not measured yet: keystroke echo through `sockit shell` against `ssh -tt`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../src/server/server.js';
import { execService } from '../src/services/exec/index.js';
import { SOCKIT_CLI } from './lib/servers.js';
import { median } from './lib/stats.js';
import type { BenchSuite } from './report.js';

const HOSTS = 200;
const PAR = 50;
/** Runs per subject, alternating (each xargs run starts 200 Node processes on a 2-core machine). */
const RUNS = Number(process.env.SOCKIT_BENCH_FLEET_RUNS ?? 2);
const CASE = `fan-out \`true\` to ${HOSTS} addresses, --par/-P ${PAR}, wall time`;
const FLEET = `sockit exec --hosts FILE --par ${PAR} (one process)`;
const XARGS = `xargs -P ${PAR} sockit exec ADDR -- true (one process per host)`;

export const shellSuite: BenchSuite = {
  name: 'shell',
  async run(context) {
    const dir = mkdtempSync(join(tmpdir(), 'sockit-bench-shell-'));
    const token = 'bench-token-not-secret';
    const server = await serve({
      listen: Array.from({ length: HOSTS }, () => 'tcp://127.0.0.1:0'),
      token,
      stateDir: dir,
      services: [execService({ allow: ['true'], maxRunning: PAR + 14 })],
    });
    try {
      const addresses = server.addresses.map(
        (address) => `tcp://127.0.0.1:${(address as { port: number }).port}`,
      );
      const hostsFile = join(dir, 'hosts');
      writeFileSync(hostsFile, `${addresses.join('\n')}\n`);
      const env = { ...process.env, SOCKIT_TOKEN: token, SOCKIT_STATE_DIR: dir, XDG_CONFIG_HOME: dir };
      const fleet = (): Promise<number> =>
        timed(
          process.execPath,
          [SOCKIT_CLI, 'exec', '--hosts', hostsFile, '--par', String(PAR), '--json', '--', 'true'],
          env,
        );
      const xargs = (): Promise<number> =>
        timed(
          'sh',
          [
            '-c',
            `xargs -P ${PAR} -I{} "${process.execPath}" "${SOCKIT_CLI}" exec {} -- true < "${hostsFile}"`,
          ],
          env,
        );
      const times: Record<string, number[]> = { [FLEET]: [], [XARGS]: [] };
      for (let run = 0; run < RUNS; run++) {
        times[FLEET]!.push(await fleet());
        times[XARGS]!.push(await xargs());
      }
      for (const [subject, values] of Object.entries(times)) {
        context.record({
          case: CASE,
          subject,
          value: Math.round(median(values)!),
          unit: 'ms',
          extra: { runs: values.length, all: values.map((value) => Math.round(value)).join('/') },
        });
      }
      context.ratio({
        case: CASE,
        label: `${XARGS} / ${FLEET} (times faster)`,
        value: median(times[XARGS]!)! / median(times[FLEET]!)!,
        target: 5,
      });
      context.note('keystroke echo through `sockit shell` against `ssh -tt` is not measured yet');
    } finally {
      await server.close(1000);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** Wall time of one child run in ms; a failing run fails the suite. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 4000) stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${command} exited ${code}: ${stderr.slice(0, 500)}`));
    });
  });
}
