/** bench/peers/SEEDS.md's serveRaw example: it type-checks against the real API, and it runs. */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { tempDir } from '../helpers.js';
import { dial, killAll, launch, readAll, readBytes, waitForText } from './helpers.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** The ```ts block under the "socketserver handler" heading of SEEDS.md. */
async function snippet(): Promise<string> {
  const text = await readFile(join(REPO, 'bench', 'peers', 'SEEDS.md'), 'utf8');
  const section = text.slice(text.indexOf('## The socketserver handler in sockit'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(match, 'SEEDS.md has the example');
  return match[1]!;
}

describe('SEEDS.md serveRaw example', { timeout: 120_000 }, () => {
  after(killAll);

  it('type-checks against src/ (strict) and serves the tutorial handshake', async () => {
    const code = await snippet();
    const dir = await tempDir();
    try {
      const file = join(dir.path, 'example.mts'); // an ES module, for the top-level await
      await writeFile(file, code);
      const program = ts.createProgram([file], {
        strict: true,
        noEmit: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        types: ['node'],
        typeRoots: [join(REPO, 'node_modules', '@types')],
        baseUrl: REPO,
        paths: { 'sockit-toolkit': [join(REPO, 'src', 'index.ts')] },
        skipLibCheck: true,
      });
      const diagnostics = ts
        .getPreEmitDiagnostics(program)
        .filter((diagnostic) => diagnostic.file?.fileName === file)
        .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
      assert.deepEqual(diagnostics, []);

      const js = ts
        .transpileModule(code, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        })
        .outputText.replace(
          "'sockit-toolkit'",
          `'${pathToFileURL(join(REPO, 'build', 'src', 'index.js')).href}'`,
        );
      const runnable = join(dir.path, 'example.mjs');
      await writeFile(runnable, js);
      const server = launch(process.execPath, [runnable], { stdin: 'ignore' });
      const [, port] = (await waitForText(
        server,
        /^ready tcp:\/\/127\.0\.0\.1:(\d+)$/m,
        'stdout',
      )) as RegExpMatchArray;
      const socket = await dial(Number(port));
      const everything = readAll(socket);
      const hello = readBytes(socket, 'Hello World!\nHI'.length);
      socket.write('hi');
      await hello;
      socket.write('exit');
      assert.equal((await everything).toString(), 'Hello World!\nHI');
      await server.stop();
    } finally {
      await dir.cleanup();
    }
  });
});
