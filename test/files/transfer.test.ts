import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EMPTY_SHA256 } from '../../src/protocol/files.js';
import { Jail } from '../../src/services/files/jail.js';
import { describeOverTransports } from '../helpers.js';
import {
  checksumFile,
  filesAndClientPerSuite,
  isCode,
  sha256File,
  startFiles,
  treeOf,
  writeRandomFile,
} from './fixtures.js';

describeOverTransports('put and get', (transport) => {
  const suite = filesAndClientPerSuite(transport);

  test('a file round-trips byte for byte, verified by the negotiated checksum on both sides', async () => {
    const { files, client } = suite;
    const source = join(files.local, 'a.bin');
    const sha = await writeRandomFile(source, 3 * 1024 * 1024 + 17);
    const put = await client.put(source, 'dir/sub/a.bin');
    assert.equal(put.checksum, 'xxh64', 'the fastest common checksum is the default');
    assert.equal(put.digest, await checksumFile(put.localPath, put.checksum));
    assert.equal(put.resumedFrom, 0);
    assert.equal(await sha256File(join(files.root, 'dir', 'sub', 'a.bin')), sha);
    const back = join(files.local, 'a.back');
    const get = await client.get('dir/sub/a.bin', back);
    assert.equal(get.digest, await checksumFile(get.localPath, get.checksum));
    assert.equal(await sha256File(back), sha);
    // No temporary file is left on either side.
    assert.deepEqual(await treeOf(join(files.root, 'dir')), ['sub', 'sub/a.bin']);
    assert.deepEqual(await treeOf(files.local), ['a.back', 'a.bin']);
  });

  test('a 0-byte file', async () => {
    const { files, client } = suite;
    const empty = join(files.local, 'empty');
    await writeFile(empty, '');
    const put = await client.put(empty, 'empty');
    assert.equal(put.digest, put.checksum === 'sha256' ? EMPTY_SHA256 : 'ef46db3751d8e999');
    assert.equal((await stat(join(files.root, 'empty'))).size, 0);
    const got = await client.get('empty', join(files.local, 'empty.back'));
    assert.equal(got.size, 0);
    assert.equal((await readFile(join(files.local, 'empty.back'))).length, 0);
  });

  test('names with spaces and Unicode', async () => {
    const { files, client } = suite;
    const names = ['with space.txt', 'ünïcödé 文件 🚀.txt', 'dir with space/naïve café.md'];
    for (const [index, name] of names.entries()) {
      const source = join(files.local, `source-${index}`);
      await writeFile(source, `file ${name}\n`);
      await client.put(source, `unicode/${name}`);
      assert.equal(await readFile(join(files.root, 'unicode', name), 'utf8'), `file ${name}\n`);
      await client.get(`unicode/${name}`, join(files.local, `back-${index}`));
      assert.equal(await readFile(join(files.local, `back-${index}`), 'utf8'), `file ${name}\n`);
    }
    const listed = (await client.list('unicode', { recursive: true })).map((entry) => entry.path);
    assert.deepEqual(listed, [
      'unicode/dir with space',
      'unicode/dir with space/naïve café.md',
      'unicode/with space.txt',
      'unicode/ünïcödé 文件 🚀.txt',
    ]);
  });

  test('mode and mtime are kept both ways', async () => {
    const { files, client } = suite;
    const source = join(files.local, 'script.sh');
    await writeFile(source, '#!/bin/sh\necho hi\n');
    await chmod(source, 0o750);
    const mtime = new Date('2001-02-03T04:05:06.000Z');
    await utimes(source, mtime, mtime);
    await client.put(source, 'script.sh');
    const stored = await stat(join(files.root, 'script.sh'));
    assert.equal(stored.mode & 0o777, 0o750);
    assert.equal(stored.mtimeMs, mtime.getTime());
    const entry = await client.stat('script.sh');
    assert.equal(entry.mode, 0o750);
    assert.equal(entry.mtimeMs, mtime.getTime());
    const back = join(files.local, 'script.back');
    await client.get('script.sh', back);
    const local = await stat(back);
    assert.equal(local.mode & 0o777, 0o750);
    assert.equal(local.mtimeMs, mtime.getTime());
  });

  test('an existing target is CONFLICT without overwrite, replaced with it; both ways', async () => {
    const { files, client } = suite;
    const one = join(files.local, 'one.txt');
    const two = join(files.local, 'two.txt');
    await writeFile(one, 'one\n');
    await writeFile(two, 'two\n');
    await client.put(one, 'conflict.txt');
    await assert.rejects(client.put(two, 'conflict.txt'), isCode('CONFLICT'));
    assert.equal(await readFile(join(files.root, 'conflict.txt'), 'utf8'), 'one\n');
    await client.put(two, 'conflict.txt', { overwrite: true });
    assert.equal(await readFile(join(files.root, 'conflict.txt'), 'utf8'), 'two\n');
    await assert.rejects(client.get('conflict.txt', one), isCode('CONFLICT'));
    assert.equal(await readFile(one, 'utf8'), 'one\n');
    await client.get('conflict.txt', one, { overwrite: true });
    assert.equal(await readFile(one, 'utf8'), 'two\n');
    await assert.rejects(client.put(one, 'dir'), isCode('CONFLICT'), 'a directory is never replaced');
  });

  test('list, stat (with SHA-256) and delete', async () => {
    const { files, client } = suite;
    const source = join(files.local, 'listed.bin');
    const sha = await writeRandomFile(source, 100_000);
    await client.put(source, 'tree/x/listed.bin');
    await client.put(source, 'tree/y.bin');
    const entries = await client.list('tree', { recursive: true });
    assert.deepEqual(
      entries.map((entry) => [entry.path, entry.kind, entry.size]),
      [
        ['tree/x', 'dir', 0],
        ['tree/x/listed.bin', 'file', 100_000],
        ['tree/y.bin', 'file', 100_000],
      ],
    );
    assert.deepEqual(
      (await client.list('tree')).map((entry) => entry.path),
      ['tree/x', 'tree/y.bin'],
    );
    assert.deepEqual(
      (await client.list('tree/y.bin')).map((entry) => entry.path),
      ['tree/y.bin'],
    );
    const entry = await client.stat('tree/y.bin', { sha256: true });
    assert.equal(entry.sha256, sha);
    assert.equal((await client.stat('tree/y.bin')).sha256, undefined);
    assert.equal((await client.stat('')).kind, 'dir');
    await assert.rejects(client.stat('tree/missing'), isCode('NOT_FOUND'));
    await assert.rejects(client.get('tree/missing', join(files.local, 'm')), isCode('NOT_FOUND'));
    await assert.rejects(client.get('tree', join(files.local, 'm')), isCode('BAD_REQUEST'));
    await assert.rejects(client.delete('tree/x'), isCode('CONFLICT'), 'not empty');
    await client.delete('tree/x/listed.bin');
    await client.delete('tree/x');
    await assert.rejects(client.delete('tree/x'), isCode('NOT_FOUND'));
    assert.deepEqual(
      (await client.list('tree')).map((entry) => entry.path),
      ['tree/y.bin'],
    );
  });

  test('concurrent puts of different files on one connection and on several', async () => {
    const { files, client } = suite;
    const sources = await Promise.all(
      Array.from({ length: 6 }, async (_, index) => {
        const path = join(files.local, `parallel-${index}.bin`);
        return { path, sha: await writeRandomFile(path, 1024 * 1024 + index * 4099) };
      }),
    );
    const other = await files.connect();
    await Promise.all(
      sources.map((source, index) =>
        (index % 2 === 0 ? client : other).put(source.path, `parallel/${index}.bin`),
      ),
    );
    for (const [index, source] of sources.entries()) {
      assert.equal(await sha256File(join(files.root, 'parallel', `${index}.bin`)), source.sha);
    }
  });

  test('a put racing a put to the same name leaves one whole file, never a mix', async () => {
    const { files, client } = suite;
    const first = join(files.local, 'race-1.bin');
    const second = join(files.local, 'race-2.bin');
    const shas = [
      await writeRandomFile(first, 4 * 1024 * 1024),
      await writeRandomFile(second, 4 * 1024 * 1024),
    ];
    const other = await files.connect();
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([
        client.put(first, 'race.bin', { overwrite: true }),
        other.put(second, 'race.bin', { overwrite: true }),
      ]);
      assert.ok(results.some((result) => result.status === 'fulfilled'));
      for (const result of results) {
        if (result.status === 'rejected') assert.ok(isCode('CONFLICT')(result.reason), String(result.reason));
      }
      assert.ok(shas.includes(await sha256File(join(files.root, 'race.bin'))));
      // Without overwrite exactly one of two puts of a new name wins.
      const fresh = `race-new-${round}.bin`;
      const creates = await Promise.allSettled([client.put(first, fresh), other.put(second, fresh)]);
      assert.equal(creates.filter((result) => result.status === 'fulfilled').length, 1);
      assert.ok(shas.includes(await sha256File(join(files.root, fresh))));
    }
    assert.deepEqual(
      (await treeOf(files.root)).filter((name) => name.includes('.sockit-')),
      [],
    );
  });
});

describe('limits', () => {
  test('a file over the size quota is TOO_LARGE before any byte moves', async () => {
    const files = await startFiles({ files: { maxFileSize: 1000 } });
    try {
      const client = await files.connect();
      const source = join(files.local, 'big');
      await writeRandomFile(source, 1001);
      await assert.rejects(client.put(source, 'big'), (error: unknown) => {
        assert.ok(isCode('TOO_LARGE')(error));
        assert.match((error as Error).message, /limit of 1000 bytes/);
        return true;
      });
      await writeRandomFile(source, 1000);
      await client.put(source, 'ok');
      assert.deepEqual(await treeOf(files.root), ['ok']);
    } finally {
      await files.stop();
    }
  });

  test('too little free space is refused up front with a clear error', async () => {
    const files = await startFiles({ files: { reserveBytes: Number.MAX_SAFE_INTEGER - 1 } });
    try {
      const client = await files.connect();
      const source = join(files.local, 'f');
      await writeFile(source, 'x');
      await assert.rejects(client.put(source, 'f'), (error: unknown) => {
        assert.ok(isCode('UNAVAILABLE')(error));
        assert.match((error as Error).message, /not enough free space/);
        return true;
      });
      assert.deepEqual(await treeOf(files.root), []);
    } finally {
      await files.stop();
    }
  });

  test('a listing too large for one frame streams in parts, or is TOO_LARGE for brief-only clients', async () => {
    const files = await startFiles();
    try {
      const client = await files.connect();
      const { mkdir } = await import('node:fs/promises');
      const names: string[] = [];
      for (let i = 0; i < 600; i++) {
        const name = `${String(i).padStart(4, '0')}-${'long-name-'.repeat(12)}`;
        names.push(`many/${name}`);
      }
      await mkdir(join(files.root, 'many'));
      await Promise.all(names.map((name) => writeFile(join(files.root, name), '')));
      const entries = await client.list('many');
      assert.deepEqual(
        entries.map((entry) => entry.path),
        names,
      );
      await assert.rejects(client.call({ type: 'list', path: 'many' }), isCode('TOO_LARGE'));
    } finally {
      await files.stop();
    }
  });

  test('a big directory streams: the first part leaves before the walk has stat-ed half of it', async () => {
    let partsWritten = 0;
    const files = await startFiles({
      // Counts the list-part frames the server writes, as it writes them.
      wrap: (service) => ({
        ...service,
        requests: {
          ...service.requests,
          list: (request) => {
            const write = request.write.bind(request);
            request.write = (header, body) => {
              if (header.type === 'list-part') partsWritten++;
              return write(header, body);
            };
            return service.requests!.list!(request);
          },
        },
      }),
    });
    const entryStats = Jail.prototype.entryStats;
    try {
      const count = 1500;
      await mkdir(join(files.root, 'big', 'sub'), { recursive: true });
      const names = Array.from(
        { length: count },
        (_, i) => `${String(i).padStart(5, '0')}-${'x'.repeat(100)}`,
      );
      await Promise.all(names.map((name) => writeFile(join(files.root, 'big', name), '')));
      await writeFile(join(files.root, 'big', 'sub', 'inner'), 'in');
      // What had been sent when the walk reached each entry: read and stat-ed whole before
      // sending, nothing would have been.
      const sentAtStat: number[] = [];
      Jail.prototype.entryStats = function (this: Jail, ...args: Parameters<Jail['entryStats']>) {
        sentAtStat.push(partsWritten);
        return entryStats.apply(this, args);
      };
      const client = await files.connect();
      const entries = await client.list('big', { recursive: true });
      // `big` itself (list checks what it names), then its 1500 files and sub, then sub/inner.
      assert.equal(sentAtStat.length, count + 3, 'every entry stat-ed once');
      assert.ok(
        sentAtStat[count / 2]! >= 1,
        `parts sent when half the entries were stat-ed: ${sentAtStat[count / 2]}`,
      );
      assert.ok(partsWritten >= 4, `${partsWritten} parts`);
      // The client sorts what came in directory order: by name, depth first.
      assert.deepEqual(
        entries.map((entry) => entry.path),
        [...names.map((name) => `big/${name}`), 'big/sub', 'big/sub/inner'],
      );
    } finally {
      Jail.prototype.entryStats = entryStats;
      await files.stop();
    }
  });
});
