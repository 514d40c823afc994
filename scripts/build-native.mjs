/**
 * `npm install` step: builds native/ (the exec service's posix_spawn spawner and the files
 * service's XXH64) with the node-gyp that npm provides. Linux only. A failed build is reported
 * and not fatal: the exec service then uses child_process.spawn, which works everywhere and forks
 * (slower from a large server), and xxh64 the xxhash-wasm package (slower: it copies every chunk).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = fileURLToPath(new URL('../native/', import.meta.url));

if (process.platform !== 'linux') {
  console.log(
    'sockit: the native addon is Linux-only; exec uses child_process.spawn and xxh64 WebAssembly here.',
  );
  process.exit(0);
}
const nodeGyp = process.env.npm_config_node_gyp;
const command = nodeGyp ? process.execPath : 'node-gyp';
// Headers of the running Node, when its installation has them (Debian's nodejs, the official
// tarballs): node-gyp then needs no download, which a machine without internet cannot make.
const localHeaders = join(dirname(dirname(process.execPath)), 'include', 'node', 'node_api.h');
const nodedir = existsSync(localHeaders) ? [`--nodedir=${dirname(dirname(process.execPath))}`] : [];
const args = nodeGyp ? [nodeGyp, 'rebuild', ...nodedir] : ['rebuild', ...nodedir];
const result = spawnSync(command, args, { cwd: nativeDir, stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    'sockit: the native addon did not build (node-gyp needs python3, make and a C compiler); ' +
      'exec will use child_process.spawn and xxh64 WebAssembly instead.',
  );
}
