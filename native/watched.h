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

/*
 * Stops polling `w` and closes its duplicate: uv_close drops it from epoll at once, then the
 * descriptor may close; `*closing` counts the close callbacks still due before the owner may go.
 */
static inline void close_watched(watched *w, int *closing, uv_close_cb on_closed) {
  if (!w->open) return;
  (*closing)++;
  uv_close((uv_handle_t *)&w->poll, on_closed);
  close(w->fd);
  w->open = false;
}

/*
 * Ends a direction: takes its callback and async context (*on_done, *context become NULL),
 * releases the owner, then calls onDone(errnoName or null, moved). Released first because the
 * callback may stop() or destroy the sockets; the handle is inert by then.
 */
static inline void call_done(napi_env env, napi_ref *on_done, napi_async_context *context, int err,
                             double moved, void (*release)(void *), void *owner) {
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, receiver, argv[2], ignored;
  napi_get_reference_value(env, *on_done, &callback);
  napi_get_global(env, &receiver); /* napi_make_callback wants an object */
  if (err == 0) napi_get_null(env, &argv[0]);
  else napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &argv[0]);
  napi_create_double(env, moved, &argv[1]);
  napi_async_context taken_context = *context;
  napi_ref reference = *on_done;
  *context = NULL;
  *on_done = NULL;
  release(owner);
  napi_make_callback(env, taken_context, receiver, callback, 2, argv, &ignored);
  napi_delete_reference(env, reference);
  napi_async_destroy(env, taken_context);
  napi_close_handle_scope(env, scope);
}

/* Throws an Error whose code is the errno's name and whose message says what failed. */
static inline napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[128];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

#endif
