/**
 * `npm install` step: builds native/ (the exec service's posix_spawn spawner) with the node-gyp
 * that npm provides. Linux only. A failed build is reported and not fatal: the exec service then
 * uses child_process.spawn, which works everywhere and forks (slower from a large server).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const nativeDir = fileURLToPath(new URL('../native/', import.meta.url));

if (process.platform !== 'linux') {
  console.log('sockit: the native spawner is Linux-only; exec uses child_process.spawn here.');
  process.exit(0);
}
const nodeGyp = process.env.npm_config_node_gyp;
const command = nodeGyp ? process.execPath : 'node-gyp';
const args = nodeGyp ? [nodeGyp, 'rebuild'] : ['rebuild'];
const result = spawnSync(command, args, { cwd: nativeDir, stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    'sockit: the native spawner did not build (node-gyp needs python3, make and a C compiler); ' +
      'exec will use child_process.spawn instead.',
  );
}
