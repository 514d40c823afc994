/** Random test and bench files: incompressible bytes, hashed as they are written. */
import { createHash, randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Largest block `writeRandomFile` fills and writes at a time. */
const BLOCK_BYTES = 4 * 1024 * 1024;

/** Writes `size` random bytes to `path` in 4 MiB blocks of `randomFill` (no period); returns their SHA-256. */
export async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'w');
  try {
    const block = Buffer.allocUnsafe(Math.min(size, BLOCK_BYTES));
    for (let written = 0; written < size; ) {
      const part = block.subarray(0, Math.min(block.length, size - written));
      randomFillSync(part);
      hash.update(part);
      await handle.write(part, 0, part.length, written);
      written += part.length;
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}
