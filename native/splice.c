/*
 * sockit's byte relay directions on Node's loop, moved in C with no JavaScript per chunk.
 *
 * For `forward`: one direction of a socket-to-socket relay moved by splice(2) through a pipe,
 * so the bytes never enter user space. Reading into a buffer and writing it out copies every
 * byte twice (kernel to user, user to kernel); splice only moves page references, which on
 * loopback cuts the relay's CPU per GiB by more than half.
 *
 * For terminals: a direction between descriptors splice cannot take (a pty master, a tty, a
 * pipe to either), copied through a buffer with read(2)/write(2) in the poll callback itself,
 * so a keystroke or its echo crosses a process in one wake-up (startCopy).
 *
 * start(srcFd, dstFd, onDone) -> handle
 *   Moves bytes from srcFd to dstFd until srcFd's end of file, on Node's own event loop. Both
 *   descriptors are dup()ed, so they get their own epoll registrations: the caller's sockets
 *   stay open and Node may keep writing the other direction into srcFd's socket. The caller
 *   must not read srcFd nor write dstFd meanwhile. Once the source ended and the pipe is
 *   empty, onDone(null, bytes) is called; on a failure onDone(errnoName, bytes). The
 *   destination is not shut down: the caller ends it (Node's own socket knows it then).
 * moved(handle) -> bytes moved so far (idle timeouts watch it)
 * startCopy(srcFd, dstFd, onDone, limit?) -> handle
 *   The same contract, through a 64 KiB buffer. A tty source's EIO is its end of file (a pty
 *   master once the last process closed the slave). A tty destination that refuses bytes
 *   (EAGAIN: the terminal's input queue is full) is tried again on a timer backing off from 1
 *   to 100 ms, because a Linux pty master polls writable even while full and waiting for
 *   POLLOUT would spin; other destinations are polled for writable. Polling makes both
 *   descriptions non-blocking (uv_poll_init does, as for every descriptor libuv watches; Node
 *   restores its standard descriptors' flags at exit), so a read never blocks the loop. With
 *   `limit`, the direction moves at most that many bytes: a source that ends there ends well,
 *   one with a byte more ends with onDone("EFBIG", limit) and that byte is not written.
 * stop(handle)
 *   Ends the relay at once, without onDone; the dup()ed descriptors are closed before it
 *   returns, so closing the caller's sockets really closes them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "watched.h"

/* The pipe between the two splices; the kernel's default is 64 KiB. */
#define PIPE_BYTES (1 << 20)
/* A copying direction's buffer: a terminal's bursts (a screenful) in one read. */
#define COPY_BYTES (64 * 1024)
/* A full tty destination is tried again after these many ms, doubling up to the last. */
#define RETRY_FIRST_MS 1
#define RETRY_MAX_MS 100

typedef struct relay relay;

struct relay {
  watched src;
  watched dst;
  int pipe_read;
  int pipe_write;
  size_t pipe_capacity;
  size_t in_pipe;
  double moved;
  bool source_ended;
  bool finished;
  int closing; /* libuv handles whose close callback is still due */
  /* A copying direction (startCopy): its buffer, what of it is still to write, and how. */
  bool copying;
  char *buffer;
  size_t pending;   /* bytes in buffer not yet written */
  size_t written;   /* of those, the offset already written */
  bool src_tty;     /* EIO is end of file */
  bool dst_tty;     /* EAGAIN is retried on the timer, not polled */
  double limit;     /* most bytes to move; 0: no limit */
  bool over_limit;  /* the source had more: EFBIG once what fits is written */
  uv_timer_t retry;
  bool retry_open;
  uint64_t retry_ms;
  napi_env env;
  napi_ref on_done;
  napi_async_context context;
  struct relay **slot; /* the JS handle's pointer to us, cleared on release */
};

static void on_handle_closed(uv_handle_t *handle) {
  relay *r = handle->data;
  if (--r->closing == 0) free(r);
}

/* Stops polling and closes every descriptor the relay owns; frees it once libuv is done. */
static void release(relay *r) {
  if (r->finished) return;
  r->finished = true;
  if (r->slot != NULL) *r->slot = NULL;
  if (r->on_done != NULL) napi_delete_reference(r->env, r->on_done);
  if (r->context != NULL) napi_async_destroy(r->env, r->context);
  close_watched(&r->src, &r->closing, on_handle_closed);
  close_watched(&r->dst, &r->closing, on_handle_closed);
  if (r->retry_open) {
    r->closing++;
    uv_close((uv_handle_t *)&r->retry, on_handle_closed);
    r->retry_open = false;
  }
  if (r->pipe_read >= 0) close(r->pipe_read);
  if (r->pipe_write >= 0) close(r->pipe_write);
  free(r->buffer);
  r->buffer = NULL;
  if (r->closing == 0) free(r);
}

static void release_owner(void *owner) { release(owner); }

static void finish(relay *r, int err) {
  call_done(r->env, &r->on_done, &r->context, err, r->moved, release_owner, r);
}

static void on_ready(uv_poll_t *poll, int status, int events);

static int watch(watched *w, int events) {
  if (w->events == events) return 0;
  w->events = events;
  return events == 0 ? uv_poll_stop(&w->poll) : uv_poll_start(&w->poll, events, on_ready);
}

/* Moves what can move now; returns 0 or an errno. Polls for what it waits on. */
static int pump(relay *r) {
  for (;;) {
    bool progress = false;
    double ignored = 0;
    int err = splice_round(r->src.fd, r->dst.fd, r->pipe_read, r->pipe_write, r->pipe_capacity,
                           &r->in_pipe, &r->source_ended, &ignored, &r->moved, &progress);
    if (err != 0) return err;
    if (r->source_ended && r->in_pipe == 0) return 0;
    if (!progress) break;
  }
  /* Wait for the source while the pipe has room, for the destination while it holds bytes. */
  int failed = watch(&r->src, !r->source_ended && r->in_pipe < r->pipe_capacity ? UV_READABLE : 0);
  if (failed == 0) failed = watch(&r->dst, r->in_pipe > 0 ? UV_WRITABLE : 0);
  return failed < 0 ? -failed : failed;
}

static void on_retry(uv_timer_t *timer);

/*
 * Writes what the buffer holds; returns 0 (all out, or waiting: `*waiting` set) or an errno.
 * A tty that refuses bytes is tried again on the timer, anything else is polled for writable.
 */
static int copy_out(relay *r, bool *waiting) {
  *waiting = false;
  while (r->pending > 0) {
    ssize_t n = write(r->dst.fd, r->buffer + r->written, r->pending);
    if (n > 0) {
      r->written += (size_t)n;
      r->pending -= (size_t)n;
      r->moved += (double)n;
      r->retry_ms = RETRY_FIRST_MS;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return errno;
    *waiting = true;
    if (r->dst_tty) {
      int failed = uv_timer_start(&r->retry, on_retry, r->retry_ms, 0);
      if (r->retry_ms < RETRY_MAX_MS) r->retry_ms = r->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : r->retry_ms * 2;
      return failed < 0 ? -failed : 0;
    }
    int failed = watch(&r->dst, UV_WRITABLE);
    return failed < 0 ? -failed : 0;
  }
  int failed = watch(&r->dst, 0);
  return failed < 0 ? -failed : 0;
}

/* A copying direction's round: write what is held, then read and write while bytes come. */
static int copy_pump(relay *r) {
  bool waiting = false;
  int err = copy_out(r, &waiting);
  if (err != 0) return err;
  if (waiting) return watch(&r->src, 0) < 0 ? EIO : 0;
  if (r->over_limit) return EFBIG;
  for (;;) {
    size_t room = COPY_BYTES;
    /* At the limit, one byte more is read to tell an end there from output past it. */
    if (r->limit > 0 && r->limit - r->moved < (double)room) room = (size_t)(r->limit - r->moved) + 1;
    if (room > COPY_BYTES) room = COPY_BYTES;
    ssize_t n = read(r->src.fd, r->buffer, room);
    if (n == 0 || (n < 0 && errno == EIO && r->src_tty)) {
      r->source_ended = true;
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return errno;
      break;
    }
    if (r->limit > 0 && r->moved + (double)n > r->limit) {
      /* What fits still goes out; then the direction ends over its limit. */
      size_t fits = (size_t)(r->limit - r->moved);
      if (fits == 0) return EFBIG;
      n = (ssize_t)fits;
      r->over_limit = true;
    }
    r->pending = (size_t)n;
    r->written = 0;
    err = copy_out(r, &waiting);
    if (err != 0) return err;
    if (waiting) return watch(&r->src, 0) < 0 ? EIO : 0;
    if (r->over_limit) return EFBIG;
  }
  int failed = watch(&r->src, UV_READABLE);
  return failed < 0 ? -failed : 0;
}

static void step(relay *r) {
  if (r->copying) {
    int err = copy_pump(r);
    if (err != 0 || (r->source_ended && r->pending == 0)) finish(r, err);
    return;
  }
  int err = pump(r);
  if (err != 0 || (r->source_ended && r->in_pipe == 0)) finish(r, err);
}

static void on_retry(uv_timer_t *timer) {
  relay *r = timer->data;
  if (!r->finished) step(r);
}

static void on_ready(uv_poll_t *poll, int status, int events) {
  (void)events;
  relay *r = poll->data;
  if (r->finished) return;
  if (status < 0 && r->copying) {
    /*
     * libuv reports POLLERR as EBADF and has stopped this poll. The descriptor's real state
     * comes from the read or write itself: the bytes a peer sent before its reset are still
     * read, and a closed reader is EPIPE, not EBADF.
     */
    (poll == &r->src.poll ? &r->src : &r->dst)->events = 0;
  } else if (status < 0) {
    finish(r, -status);
    return;
  }
  step(r);
}

static relay *unwrap(napi_env env, napi_value value) {
  relay **slot = NULL;
  if (napi_get_value_external(env, value, (void **)&slot) != napi_ok || slot == NULL) return NULL;
  return *slot;
}

/* The JS handle holds a slot that is cleared when the relay is released (finished or stopped). */
static void on_handle_collected(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay **slot = data;
  if (*slot != NULL) (*slot)->slot = NULL; /* still running: it must not write here any more */
  free(slot);
}

/* start() and startCopy(): the arguments, the relay, its descriptors, its first poll. */
static napi_value begin(napi_env env, napi_callback_info info, bool copying) {
  size_t argc = 4;
  napi_value args[4];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int32_t src = -1, dst = -1;
  double limit = 0;
  napi_valuetype kind = napi_undefined, limit_kind = napi_undefined;
  if (argc >= 3) napi_typeof(env, args[2], &kind);
  if (argc >= 4) napi_typeof(env, args[3], &limit_kind);
  if (argc < 3 || napi_get_value_int32(env, args[0], &src) != napi_ok ||
      napi_get_value_int32(env, args[1], &dst) != napi_ok || src < 0 || dst < 0 ||
      kind != napi_function ||
      (limit_kind == napi_number && (napi_get_value_double(env, args[3], &limit) != napi_ok || limit < 0)) ||
      (limit_kind != napi_number && limit_kind != napi_undefined)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                          copying ? "startCopy(srcFd, dstFd, onDone, limit?)" : "start(srcFd, dstFd, onDone)");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  relay *r = calloc(1, sizeof *r);
  if (r == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(r);
    return throw_errno(env, ENOMEM, "relay");
  }
  r->pipe_read = -1;
  r->pipe_write = -1;
  r->copying = copying;
  int err = 0;
  if (copying) {
    r->buffer = malloc(COPY_BYTES);
    if (r->buffer == NULL) err = ENOMEM;
    r->limit = limit;
    r->src_tty = isatty(src) == 1;
    r->dst_tty = isatty(dst) == 1;
    r->retry_ms = RETRY_FIRST_MS;
    if (err == 0 && uv_timer_init(loop, &r->retry) == 0) {
      r->retry.data = r;
      r->retry_open = true;
    } else if (err == 0) {
      err = ENOMEM;
    }
  } else {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      err = errno;
      free(r);
      return throw_errno(env, err, "pipe2");
    }
    r->pipe_read = pipe_fds[0];
    r->pipe_write = pipe_fds[1];
    /* A larger pipe means fewer splices; the kernel may refuse (pipe-max-size), then 64 KiB. */
    int capacity = fcntl(r->pipe_write, F_SETPIPE_SZ, PIPE_BYTES);
    if (capacity < 0) capacity = fcntl(r->pipe_write, F_GETPIPE_SZ);
    r->pipe_capacity = capacity > 0 ? (size_t)capacity : 65536;
  }
  if (err == 0) err = open_watched(loop, r, &r->src, src);
  if (err == 0) err = open_watched(loop, r, &r->dst, dst);
  r->env = env;
  napi_value name;
  napi_create_string_utf8(env, copying ? "sockit:copy" : "sockit:splice", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->context);
  napi_create_reference(env, args[2], 1, &r->on_done);
  if (err != 0) {
    release(r);
    return throw_errno(env, err, "relay");
  }
  relay **slot = malloc(sizeof *slot);
  napi_value handle;
  if (slot == NULL || napi_create_external(env, slot, on_handle_collected, NULL, &handle) != napi_ok) {
    free(slot);
    release(r);
    return throw_errno(env, ENOMEM, "relay");
  }
  *slot = r;
  r->slot = slot;
  /* Never calls onDone before start() returned: the first move waits for the poll. */
  err = watch(&r->src, UV_READABLE);
  if (err != 0) {
    release(r);
    return throw_errno(env, -err, "relay");
  }
  return handle;
}

static napi_value Start(napi_env env, napi_callback_info info) { return begin(env, info, false); }

static napi_value StartCopy(napi_env env, napi_callback_info info) { return begin(env, info, true); }

static napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  relay *r = argc == 1 ? unwrap(env, args[0]) : NULL;
  if (r != NULL) release(r);
  return NULL;
}

static napi_value Moved(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1], result;
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  relay **slot = NULL;
  if (argc == 1) napi_get_value_external(env, args[0], (void **)&slot);
  napi_create_double(env, slot != NULL && *slot != NULL ? (*slot)->moved : -1, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value start, start_copy, stop, moved;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, Start, NULL, &start);
  napi_set_named_property(env, exports, "start", start);
  napi_create_function(env, "startCopy", NAPI_AUTO_LENGTH, StartCopy, NULL, &start_copy);
  napi_set_named_property(env, exports, "startCopy", start_copy);
  napi_create_function(env, "stop", NAPI_AUTO_LENGTH, Stop, NULL, &stop);
  napi_set_named_property(env, exports, "stop", stop);
  napi_create_function(env, "moved", NAPI_AUTO_LENGTH, Moved, NULL, &moved);
  napi_set_named_property(env, exports, "moved", moved);
  return exports;
}
