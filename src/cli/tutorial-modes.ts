/** `sockit listen --tutorial-exec` / `--tutorial-upload`: the CLI's policy for the tutorials' protocols. */
import { realpath, stat } from 'node:fs/promises';
import { SockitError } from '../errors.js';
import type { ListenMode } from '../raw/listen.js';
import { resolveExecOptions } from '../services/exec/options.js';
import { planExec } from '../services/exec/policy.js';
import { splitList } from './common.js';

/**
 * The remote-command mode with the exec service's own policy: argv[0] must be on the
 * allow-list, the environment is the server's without its token, the directory the current one.
 */
export function tutorialExecMode(execAllow: string | undefined): ListenMode {
  const allow = splitList(execAllow);
  if (allow.length === 0) {
    throw new SockitError(
      'USAGE',
      '--tutorial-exec needs --exec-allow PROGRAMS (comma-separated), e.g. --exec-allow ls,uname',
    );
  }
  let policy: ReturnType<typeof resolveExecOptions>;
  try {
    policy = resolveExecOptions({ allow, spawner: 'node' });
  } catch (error) {
    throw new SockitError('USAGE', `--exec-allow: ${(error as Error).message}`);
  }
  return {
    kind: 'tutorial-exec',
    plan: async (argv) => {
      const plan = await planExec(
        {
          argv,
          shell: undefined,
          login: false,
          cwd: undefined,
          env: undefined,
          timeoutMs: undefined,
          stdin: false,
          pty: undefined,
          channel: false,
        },
        policy,
      );
      return { file: plan.file, args: plan.args, cwd: plan.cwd, env: plan.env };
    },
  };
}

/** The upload mode: DIR must be an existing directory; uploads land nowhere else. */
export async function tutorialUploadMode(directory: string): Promise<ListenMode> {
  const real = await realpath(directory).catch(() => {
    throw new SockitError('USAGE', `--tutorial-upload ${directory}: no such directory`);
  });
  if (!(await stat(real)).isDirectory()) {
    throw new SockitError('USAGE', `--tutorial-upload ${directory}: not a directory`);
  }
  return { kind: 'tutorial-upload', directory: real };
}
