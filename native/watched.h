/*
 * A descriptor a relay direction polls on Node's loop (splice.c, seal.c): its own duplicate, so
 * that its epoll registration is its own and the caller's socket stays open and usable.
 */
#ifndef SOCKIT_NATIVE_WATCHED_H
#define SOCKIT_NATIVE_WATCHED_H

#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"

/* One polled descriptor of a direction; `poll.data` points back to its owner. */
typedef struct {
  uv_poll_t poll;
  int fd;
  int events; /* what it is polled for now; 0: stopped */
  bool open;
} watched;

/* Duplicates `fd` for polling on `loop`, `owner` as the poll's data; returns 0 or an errno. */
static inline int open_watched(uv_loop_t *loop, void *owner, watched *w, int fd) {
  w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (w->fd < 0) return errno;
  w->poll.data = owner;
  int failed = uv_poll_init(loop, &w->poll, w->fd);
  if (failed != 0) {
    close(w->fd);
    return -failed;
  }
  w->open = true;
  return 0;
}

/* Throws an Error whose code is the errno's name and whose message says what failed. */
static inline napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[128];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

#endif
