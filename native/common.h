/*
 * What sockit's addons share (each is its own module; these are static, compiled into each).
 */
#ifndef SOCKIT_NATIVE_COMMON_H
#define SOCKIT_NATIVE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * The errno's own name, so sockit's errno table (src/errors.ts) sees what Node's spawn would
 * report: EPERM stays EPERM. glibc 2.32+ names every errno; elsewhere the common ones are listed.
 */
static inline const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOEXEC: return "ENOEXEC";
    case ETXTBSY: return "ETXTBSY";
    case E2BIG: return "E2BIG";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EAGAIN: return "EAGAIN";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOTTY: return "ENOTTY";
    case EBADF: return "EBADF";
    case ECONNRESET: return "ECONNRESET";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "EIO";
  }
}

/*
 * One round of a spliced relay direction: source → pipe while the pipe has room, then pipe →
 * destination while it holds bytes, without the bytes entering user space. `*in_pipe` is what
 * the pipe holds; `*ended` is set at the source's end of file; `*read` and `*written` grow by
 * what came in and went out; `*progress` says whether anything moved. Returns 0 or an errno.
 */
static inline int splice_round(int src, int dst, int pipe_read, int pipe_write, size_t capacity,
                               size_t *in_pipe, bool *ended, double *read, double *written,
                               bool *progress) {
  *progress = false;
  if (!*ended && *in_pipe < capacity) {
    ssize_t n = splice(src, NULL, pipe_write, NULL, capacity - *in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      *in_pipe += (size_t)n;
      *read += (double)n;
      *progress = true;
    } else if (n == 0) {
      *ended = true;
    } else if (errno != EAGAIN && errno != EINTR) {
      return errno;
    }
  }
  if (*in_pipe > 0) {
    ssize_t n = splice(pipe_read, NULL, dst, NULL, *in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      *in_pipe -= (size_t)n;
      *written += (double)n;
      *progress = true;
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return errno;
    }
  }
  return 0;
}

#endif
