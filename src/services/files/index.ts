/**
 * The files service (PROTOCOL section 4, "files"): put, get, list, stat, delete, mkdir and
 * symlink under one
 * root directory, verified by SHA-256, resumable, and jailed. Each request type has its own
 * module; this one only wires them to the server core.
 */

import { FILES_FRAMES } from '../../protocol/files.js';
import type { ServerRequest } from '../../server/request.js';
import type { Service } from '../../server/service.js';
import { createFilesContext, type FilesContext, type FilesOptions } from './context.js';
import { handleDelete } from './delete.js';
import { fsFailure } from './fs-errors.js';
import { handleGet } from './get.js';
import { handleGetBatch } from './get-batch.js';
import { handleList, handleStat } from './list.js';
import { handleMkdir, handleSymlink } from './make.js';
import { handlePut } from './put.js';
import { handlePutBatch } from './put-batch.js';

export type { FilesOptions } from './context.js';

/**
 * Creates the files service for `options.root`. Throws a TypeError at once when the root is
 * unusable or an option is out of range. Every request needs an authenticated connection.
 *
 * @example
 * const server = await serve({ listen: 'tcp://127.0.0.1:0', services: [filesService({ root: '/srv/drop' })] });
 */
export function filesService(options: FilesOptions): Service {
  const context = createFilesContext(options);
  // Any file-system error a handler did not name itself still gets a code and a sentence.
  const handler =
    (handle: (request: ServerRequest, context: FilesContext) => Promise<void>) =>
    (request: ServerRequest): Promise<void> =>
      handle(request, context).catch((error: unknown) => {
        throw fsFailure(error, String(request.header.path ?? ''));
      });
  return {
    name: 'files',
    requests: {
      [FILES_FRAMES.put]: handler(handlePut),
      [FILES_FRAMES.get]: handler(handleGet),
      [FILES_FRAMES.list]: handler(handleList),
      [FILES_FRAMES.stat]: handler(handleStat),
      [FILES_FRAMES.delete]: handler(handleDelete),
      [FILES_FRAMES.mkdir]: handler(handleMkdir),
      [FILES_FRAMES.symlink]: handler(handleSymlink),
      [FILES_FRAMES.putBatch]: handler(handlePutBatch),
      [FILES_FRAMES.getBatch]: handler(handleGetBatch),
    },
  };
}
