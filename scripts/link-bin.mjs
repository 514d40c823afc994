/**
 * `npm ci` / `npm install` step (after the build): puts this checkout's own `sockit` command in
 * node_modules/.bin, so `npx sockit …` inside the checkout runs the built CLI at once. Without
 * it npx looks the name up as a package and installs this project again (rerunning its install
 * scripts) on every call. The command is bin/sockit.cjs, as package.json "bin" says.
 */
import { chmodSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/sockit.cjs', import.meta.url));
const cli = fileURLToPath(new URL('../build/src/cli/main.js', import.meta.url));
const binDir = fileURLToPath(new URL('../node_modules/.bin/', import.meta.url));
chmodSync(bin, 0o755);
chmodSync(cli, 0o755);
mkdirSync(binDir, { recursive: true });
rmSync(`${binDir}sockit`, { force: true });
symlinkSync('../../bin/sockit.cjs', `${binDir}sockit`);
