/**
 * The real peer programs the interop tests run (ncat, socat, python3, …). One rule for all of them:
 * locally a missing program skips the test with a printed reason (how to install it); under
 * CI=true it fails the test, because CI (.ci/run) installs them and a skip would hide a gap.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/** The Debian package of each tool whose package is named differently (default: the tool's name). */
const DEBIAN_PACKAGE: Record<string, string> = {
  nc: 'netcat-openbsd',
  ssh: 'openssh-client',
  sshd: 'openssh-server',
  promtool: 'prometheus',
};

/** Full path of a program on PATH (or in /usr/sbin), or undefined. */
export function which(program: string): string | undefined {
  try {
    const found = execFileSync('sh', ['-c', 'command -v "$1" || command -v "/usr/sbin/$1"', 'sh', program], {
      encoding: 'utf8',
    }).trim();
    return found || undefined;
  } catch {
    return undefined;
  }
}

/** True when missing tools must fail the run (CI=true), not skip. */
export function strictTools(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true';
}

/**
 * The path of `program` for test `t`. When it is not installed: under CI=true the test fails
 * (assertion error naming the package); otherwise `t` is skipped with that reason and the result is
 * undefined, so callers write `const ncat = requireTool(t, 'ncat'); if (!ncat) return;`.
 */
export function requireTool(t: TestContext, program: string): string | undefined {
  const path = which(program);
  if (path) return path;
  const reason = notInstalled(program);
  assert.ok(!strictTools(), `${reason}; under CI=true every peer tool is required`);
  t.skip(reason);
  return undefined;
}

/** Why `program` cannot run here, or undefined when it is installed. */
export function missingTool(program: string): string | undefined {
  return which(program) ? undefined : notInstalled(program);
}

function notInstalled(program: string): string {
  return `${program} is not installed (apt-get install ${DEBIAN_PACKAGE[program] ?? program}; .ci/run does it)`;
}
