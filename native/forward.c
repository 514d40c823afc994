/*
 * sockit's connection engine for `forward` between plain stream sockets (tcp → tcp, tcp → unix):
 * accept, connect, relay and close entirely in C on Node's own event loop, so a connection costs
 * no JavaScript socket objects at all. Node's net.Socket pair per client (TCPWrap, two stream
 * states, listeners, a promise) is most of what a short connection costs a relay written in
 * JavaScript (docs/benchmarks.md, short connections); JavaScript is called only where policy
 * lives: at accept when there is an allow-list or a PROXY header to decide (`onAccept`), and at
 * the end of each connection for its log line (`onClose`).
 *
 * create(listenFd, target, options, onAccept, onClose) -> handle
 *   listenFd  a listening stream socket; it is dup()ed, so the caller closes its own (Node's
 *             server) right after and the engine accepts from then on
 *   target    [family, address, port]: family 4 or 6 with an IP literal, or 0 with a unix path
 *   options   [maxConnections, connectTimeoutMs, idleTimeoutMs (0: none), bulkBytes (a
 *             direction that has carried this many bytes is moved by splice(2) from then on;
 *             0: never)]
 *   onAccept  null, or (peer, peerIp, peerPort, localIp, localPort) -> false (refuse: closed at once),
 *             true (relay), or a Buffer (relay, and write it to the target before anything else)
 *   onClose   (peer, up, down, ms, end, errorName, active): once per accepted connection that
 *             was not refused; end is "done", "idle", "aborted", "error" or "connect" (the
 *             target refused or timed out: errorName ETIMEDOUT); active is what is left
 * count(handle) -> connections being relayed or connected now
 * stopAccepting(handle)  closes the listening socket; connections go on
 * abortAll(handle)       ends every connection now (end "aborted"), onClose for each first
 *
 * Each client gets a fresh non-blocking connection to the target; a client over maxConnections
 * is closed at accept. Until the target answers nothing is read from the client (the kernel
 * holds its bytes, and its FIN). Each direction copies through the engine's one scratch buffer
 * and writes at once; what a full destination did not take is kept (at most one read's worth)
 * and the source is not read again until it is written: backpressure without unbounded memory.
 * A source's end of file is passed on as shutdown(SHUT_WR) once its bytes are written, and the
 * other direction goes on until it ends too (half-close both ways); the connection is over when
 * both directions have ended, or at the first error, which closes both sockets. Deadlines are
 * fixed: the connect timeout runs from accept, and the idle timer is one repeating check of the
 * byte total, which data moves but never re-arms.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common.h"

/* One read's worth: the scratch buffer, and the most a connection keeps for a full destination. */
#define SCRATCH_BYTES (64 * 1024)
/* The pipe of a spliced direction; the kernel may refuse (pipe-max-size), then its default. */
#define PIPE_BYTES (1 << 20)
/* Work per wake-up, so that one busy connection or a flood of accepts cannot starve the rest. */
#define ACCEPTS_PER_WAKE 64
#define ROUNDS_PER_WAKE 16
/* Out of descriptors: stop accepting for this long rather than spin on a readable listener. */
#define ACCEPT_PAUSE_MS 100

typedef struct engine engine;
typedef struct conn conn;

enum { CLIENT = 0, TARGET = 1 };
enum phase { CONNECTING, RELAYING, FINISHED };

/* One direction: from fd[from] to fd[1 - from]. */
typedef struct {
  int from;
  bool ended;      /* the source's end of file was read */
  bool shut;       /* and passed on: the destination is shut down for writing */
  bool want_read;  /* the source is polled for input */
  bool want_write; /* the destination is polled for room */
  uint8_t *pending; /* SCRATCH_BYTES, allocated the first time a destination is full */
  size_t pending_len;
  size_t pending_off;
  int pipe_read; /* spliced once pipe_read >= 0 */
  int pipe_write;
  size_t pipe_capacity;
  size_t in_pipe;
  bool splice_refused; /* a pipe could not be made: copy on */
  double moved;        /* bytes read from the source */
} direction;

struct conn {
  engine *e;
  conn *prev;
  conn *next;
  int fd[2];
  uv_poll_t poll[2];
  bool polled[2]; /* poll[i] initialised (and must be closed) */
  int mask[2];
  uv_timer_t timer; /* the connect deadline, then the idle check */
  direction dir[2]; /* dir[CLIENT]: up (client → target), dir[TARGET]: down */
  enum phase phase;
  uint64_t started_ns;
  double idle_mark;
  int handles; /* libuv handles whose close callback is still due */
  char peer[INET6_ADDRSTRLEN + 10];
};

struct engine {
  napi_env env;
  uv_loop_t *loop;
  napi_ref on_accept; /* NULL: admit everyone, no preamble */
  napi_ref on_close;
  napi_async_context context;
  int listen_fd;
  uv_poll_t listen_poll;
  uv_timer_t pause_timer;
  bool listening;
  struct sockaddr_storage target;
  socklen_t target_len;
  uint32_t max_connections;
  uint32_t active;
  uint64_t connect_timeout_ms;
  uint64_t idle_ms;
  double bulk_bytes;
  uint8_t scratch[SCRATCH_BYTES];
  conn *conns;
  int handles;   /* the engine's own libuv handles still to close */
  bool orphaned; /* the JS handle was collected */
};

static void maybe_free_engine(engine *e) {
  if (e->orphaned && !e->listening && e->handles == 0 && e->conns == NULL) {
    napi_async_destroy(e->env, e->context);
    if (e->on_accept != NULL) napi_delete_reference(e->env, e->on_accept);
    napi_delete_reference(e->env, e->on_close);
    free(e);
  }
}

/*
 * Calls a JS callback: from a libuv callback through napi_make_callback (async context,
 * microtasks after), from inside a JS call (abortAll) directly. A throw is reported as Node
 * reports any uncaught exception.
 */
static bool call_js(engine *e, napi_ref ref, size_t argc, napi_value *argv, bool from_js,
                    napi_value *result) {
  napi_env env = e->env;
  napi_value fn, receiver, ignored;
  napi_get_reference_value(env, ref, &fn);
  napi_get_global(env, &receiver);
  napi_status status =
      from_js ? napi_call_function(env, receiver, fn, argc, argv, result ? result : &ignored)
              : napi_make_callback(env, e->context, receiver, fn, argc, argv, result ? result : &ignored);
  if (status == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  return false;
}

/* ---- one connection ---- */

static void on_conn_ready(uv_poll_t *poll, int status, int events);

static void on_conn_handle_closed(uv_handle_t *handle) {
  conn *c = handle->data;
  if (--c->handles == 0) {
    engine *e = c->e;
    for (int i = 0; i < 2; i++) free(c->dir[i].pending);
    free(c);
    maybe_free_engine(e);
  }
}

static void set_mask(conn *c, int i, int mask) {
  if (!c->polled[i] || c->mask[i] == mask) return;
  c->mask[i] = mask;
  if (mask == 0) uv_poll_stop(&c->poll[i]);
  else uv_poll_start(&c->poll[i], mask, on_conn_ready);
}

/* Polls each socket for what its two directions wait on (or, connecting, the target's answer). */
static void update_polls(conn *c) {
  if (c->phase == CONNECTING) {
    set_mask(c, CLIENT, 0);
    set_mask(c, TARGET, UV_WRITABLE);
    return;
  }
  for (int i = 0; i < 2; i++) {
    int mask = 0;
    if (c->dir[i].want_read) mask |= UV_READABLE;     /* dir[i] reads fd[i] */
    if (c->dir[1 - i].want_write) mask |= UV_WRITABLE; /* dir[1 - i] writes fd[i] */
    set_mask(c, i, mask);
  }
}

static void close_pipe(direction *d) {
  if (d->pipe_read < 0) return;
  close(d->pipe_read);
  close(d->pipe_write);
  d->pipe_read = d->pipe_write = -1;
}

/*
 * Ends a connection: both sockets closed, then its line. `end` as onClose has it; `err` an
 * errno or 0. A reset once both sides had sent their FIN is how some peers close: not an error.
 */
static void finish(conn *c, const char *end, int err, bool from_js) {
  if (c->phase == FINISHED) return;
  engine *e = c->e;
  if (err != 0 && strcmp(end, "error") == 0 && c->dir[0].ended && c->dir[1].ended &&
      (err == ECONNRESET || err == EPIPE)) {
    end = "done";
    err = 0;
  }
  c->phase = FINISHED;
  for (int i = 0; i < 2; i++) {
    if (c->polled[i]) {
      c->handles++;
      uv_close((uv_handle_t *)&c->poll[i], on_conn_handle_closed);
    }
    if (c->fd[i] >= 0) close(c->fd[i]);
    c->fd[i] = -1;
    close_pipe(&c->dir[i]);
  }
  c->handles++;
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  if (c->prev != NULL) c->prev->next = c->next;
  else e->conns = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  e->active--;

  napi_env env = e->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[7];
  napi_create_string_utf8(env, c->peer, NAPI_AUTO_LENGTH, &argv[0]);
  napi_create_double(env, c->dir[CLIENT].moved, &argv[1]);
  napi_create_double(env, c->dir[TARGET].moved, &argv[2]);
  napi_create_double(env, (double)((uv_hrtime() - c->started_ns) / 1000000), &argv[3]);
  napi_create_string_utf8(env, end, NAPI_AUTO_LENGTH, &argv[4]);
  if (err == 0) napi_get_null(env, &argv[5]);
  else napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &argv[5]);
  napi_create_uint32(env, e->active, &argv[6]);
  call_js(e, e->on_close, 7, argv, from_js, NULL);
  napi_close_handle_scope(env, scope);
}

/* A direction that has proved bulk: from now on the kernel moves it through a pipe. */
static void start_splice(direction *d) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    d->splice_refused = true;
    return;
  }
  d->pipe_read = fds[0];
  d->pipe_write = fds[1];
  int capacity = fcntl(d->pipe_write, F_SETPIPE_SZ, PIPE_BYTES);
  if (capacity < 0) capacity = fcntl(d->pipe_write, F_GETPIPE_SZ);
  d->pipe_capacity = capacity > 0 ? (size_t)capacity : 65536;
}

static int pump_spliced(conn *c, direction *d) {
  int src = c->fd[d->from], dst = c->fd[1 - d->from];
  for (int round = 0; round < ROUNDS_PER_WAKE; round++) {
    bool progress = false;
    double written = 0;
    int err = splice_round(src, dst, d->pipe_read, d->pipe_write, d->pipe_capacity, &d->in_pipe,
                           &d->ended, &d->moved, &written, &progress);
    if (err != 0) return err;
    if (d->ended && d->in_pipe == 0) {
      d->shut = true;
      if (shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      return 0;
    }
    if (!progress) break;
  }
  d->want_read = !d->ended && d->in_pipe < d->pipe_capacity;
  d->want_write = d->in_pipe > 0;
  return 0;
}

/* Moves what can move now in one direction; returns 0 or an errno; sets what to poll for. */
static int pump(conn *c, direction *d) {
  d->want_read = d->want_write = false;
  if (d->shut) return 0;
  int src = c->fd[d->from], dst = c->fd[1 - d->from];
  uint8_t *scratch = c->e->scratch;
  for (int round = 0; round < ROUNDS_PER_WAKE; round++) {
    if (d->pending_off < d->pending_len) {
      ssize_t n = send(dst, d->pending + d->pending_off, d->pending_len - d->pending_off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) return errno;
        d->want_write = true;
        return 0;
      }
      d->pending_off += (size_t)n;
      if (d->pending_off < d->pending_len) {
        d->want_write = true;
        return 0;
      }
      d->pending_off = d->pending_len = 0;
    }
    /* Spliced: the pipe may still hold bytes after the source's end. */
    if (d->pipe_read >= 0) return pump_spliced(c, d);
    if (d->ended) {
      d->shut = true;
      if (shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      return 0;
    }
    ssize_t n = recv(src, scratch, SCRATCH_BYTES, 0);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR) return errno;
      d->want_read = true;
      return 0;
    }
    if (n == 0) {
      d->ended = true;
      continue;
    }
    d->moved += (double)n;
    ssize_t written = send(dst, scratch, (size_t)n, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno != EAGAIN && errno != EINTR) return errno;
      written = 0;
    }
    if (written < n) {
      if (d->pending == NULL && (d->pending = malloc(SCRATCH_BYTES)) == NULL) return ENOMEM;
      d->pending_len = (size_t)(n - written);
      memcpy(d->pending, scratch + written, d->pending_len);
      d->want_write = true;
      return 0;
    }
    if (c->e->bulk_bytes > 0 && d->moved >= c->e->bulk_bytes && !d->splice_refused) start_splice(d);
  }
  d->want_read = true; /* more may be waiting: the (level-triggered) poll says */
  return 0;
}

static void relay_step(conn *c, bool up, bool down) {
  for (int i = 0; i < 2; i++) {
    if (!(i == CLIENT ? up : down)) continue;
    int err = pump(c, &c->dir[i]);
    if (err != 0) {
      finish(c, "error", err, false);
      return;
    }
  }
  if (c->dir[0].shut && c->dir[1].shut) {
    finish(c, "done", 0, false);
    return;
  }
  update_polls(c);
}

static void on_idle_check(uv_timer_t *timer) {
  conn *c = timer->data;
  double total = c->dir[0].moved + c->dir[1].moved;
  if (total == c->idle_mark) finish(c, "idle", 0, false);
  else c->idle_mark = total;
}

static void on_connect_deadline(uv_timer_t *timer) {
  finish(timer->data, "connect", ETIMEDOUT, false);
}

static void connected(conn *c) {
  c->phase = RELAYING;
  uv_timer_stop(&c->timer);
  if (c->e->idle_ms > 0) uv_timer_start(&c->timer, on_idle_check, c->e->idle_ms, c->e->idle_ms);
  relay_step(c, true, true);
}

/* The socket's pending error (SO_ERROR), or 0. */
static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

static void on_conn_ready(uv_poll_t *poll, int status, int events) {
  conn *c = poll->data;
  if (c->phase == FINISHED) return;
  int side = poll == &c->poll[CLIENT] ? CLIENT : TARGET;
  if (c->phase == CONNECTING) {
    int err = socket_error(c->fd[TARGET]);
    if (err == 0 && status < 0) err = -status;
    if (err != 0) finish(c, "connect", err, false);
    else connected(c);
    return;
  }
  if (status < 0) {
    /* libuv says EBADF for any POLLERR (and has stopped the poll). A reset does not discard
     * what the peer sent before it: that is still readable, so it is passed on first (as Node's
     * stream reads do), and the read that finds the reset says which error it was. */
    c->mask[side] = 0;
    int err = c->dir[side].ended ? 0 : pump(c, &c->dir[side]);
    if (err == 0) err = socket_error(c->fd[side]);
    finish(c, "error", err != 0 ? err : -status, false);
    return;
  }
  /* Readable (or hung up): the direction reading this side; writable: the one writing it. */
  bool readable = (events & (UV_READABLE | UV_DISCONNECT)) != 0;
  bool writable = (events & UV_WRITABLE) != 0;
  relay_step(c, side == CLIENT ? readable : writable, side == CLIENT ? writable : readable);
}

static int start_poll(conn *c, int i) {
  int failed = uv_poll_init(c->e->loop, &c->poll[i], c->fd[i]);
  if (failed != 0) return -failed;
  c->poll[i].data = c;
  c->polled[i] = true;
  return 0;
}

static void start_connect(conn *c) {
  engine *e = c->e;
  int fd = socket(e->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    finish(c, "connect", errno, false);
    return;
  }
  c->fd[TARGET] = fd;
  int err = start_poll(c, TARGET);
  if (err != 0) {
    finish(c, "connect", err, false);
    return;
  }
  if (connect(fd, (struct sockaddr *)&e->target, e->target_len) == 0) {
    connected(c);
    return;
  }
  if (errno != EINPROGRESS) {
    finish(c, "connect", errno, false);
    return;
  }
  uv_timer_start(&c->timer, on_connect_deadline, e->connect_timeout_ms, 0);
  update_polls(c);
}

/* `ip`, `port` and the peer text of a socket address; a v4-mapped v6 address shows as v4. */
static void describe(const struct sockaddr_storage *ss, char *ip, size_t ip_size, int *port, char *peer,
                     size_t peer_size) {
  ip[0] = '\0';
  *port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)ip_size);
    *port = ntohs(in->sin_port);
    snprintf(peer, peer_size, "%s:%d", ip, *port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    *port = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, (socklen_t)ip_size);
      snprintf(peer, peer_size, "%s:%d", ip, *port);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)ip_size);
      snprintf(peer, peer_size, "[%s]:%d", ip, *port);
    }
  } else {
    snprintf(peer, peer_size, "unix");
  }
}

/* onAccept's verdict: false refuses; a Buffer is the target's preamble, copied to `c`. */
static bool ask_admission(engine *e, conn *c, const char *peer_ip, int peer_port) {
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  memset(&local, 0, sizeof local);
  char local_ip[INET6_ADDRSTRLEN], local_peer[INET6_ADDRSTRLEN + 10];
  int local_port = 0;
  if (getsockname(c->fd[CLIENT], (struct sockaddr *)&local, &local_len) == 0)
    describe(&local, local_ip, sizeof local_ip, &local_port, local_peer, sizeof local_peer);
  else local_ip[0] = '\0';
  napi_env env = e->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[5], result;
  napi_create_string_utf8(env, c->peer, NAPI_AUTO_LENGTH, &argv[0]);
  if (peer_ip[0] == '\0') napi_get_undefined(env, &argv[1]);
  else napi_create_string_utf8(env, peer_ip, NAPI_AUTO_LENGTH, &argv[1]);
  napi_create_int32(env, peer_port, &argv[2]);
  if (local_ip[0] == '\0') napi_get_undefined(env, &argv[3]);
  else napi_create_string_utf8(env, local_ip, NAPI_AUTO_LENGTH, &argv[3]);
  napi_create_int32(env, local_port, &argv[4]);
  bool admitted = false;
  if (call_js(e, e->on_accept, 5, argv, false, &result)) {
    bool is_buffer = false;
    napi_is_buffer(env, result, &is_buffer);
    if (is_buffer) {
      void *data = NULL;
      size_t length = 0;
      napi_get_buffer_info(env, result, &data, &length);
      direction *up = &c->dir[CLIENT];
      if (length > SCRATCH_BYTES) length = SCRATCH_BYTES;
      if (length > 0 && (up->pending = malloc(SCRATCH_BYTES)) != NULL) {
        memcpy(up->pending, data, length);
        up->pending_len = length;
        admitted = true;
      }
    } else {
      napi_get_value_bool(env, result, &admitted);
    }
  }
  napi_close_handle_scope(env, scope);
  return admitted;
}

static void accept_one(engine *e, int fd, const struct sockaddr_storage *address) {
  if (e->active >= e->max_connections) {
    close(fd); /* over the limit: closed at once, nothing written (the stream is not ours) */
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    close(fd);
    return;
  }
  c->e = e;
  c->fd[CLIENT] = fd;
  c->fd[TARGET] = -1;
  for (int i = 0; i < 2; i++) {
    c->dir[i].from = i;
    c->dir[i].pipe_read = c->dir[i].pipe_write = -1;
  }
  c->started_ns = uv_hrtime();
  char ip[INET6_ADDRSTRLEN];
  int port = 0;
  describe(address, ip, sizeof ip, &port, c->peer, sizeof c->peer);
  if (e->on_accept != NULL && !ask_admission(e, c, ip, port)) {
    close(fd);
    free(c->dir[CLIENT].pending);
    free(c);
    return;
  }
  if (!e->listening && e->on_accept != NULL) {
    /* onAccept stopped the engine meanwhile: this one is not ours to serve either. */
    close(fd);
    free(c->dir[CLIENT].pending);
    free(c);
    return;
  }
  uv_timer_init(e->loop, &c->timer);
  c->timer.data = c;
  c->next = e->conns;
  if (e->conns != NULL) e->conns->prev = c;
  e->conns = c;
  e->active++;
  int err = start_poll(c, CLIENT);
  if (err != 0) {
    finish(c, "connect", err, false);
    return;
  }
  start_connect(c);
}

/* ---- the listener ---- */

static void on_listen_ready(uv_poll_t *poll, int status, int events);

static void on_pause_over(uv_timer_t *timer) {
  engine *e = timer->data;
  if (e->listening) uv_poll_start(&e->listen_poll, UV_READABLE, on_listen_ready);
}

static void on_listen_ready(uv_poll_t *poll, int status, int events) {
  (void)events;
  engine *e = poll->data;
  if (status < 0) {
    /* POLLERR: libuv has stopped the poll; try again later rather than never accept again. */
    if (e->listening) uv_timer_start(&e->pause_timer, on_pause_over, ACCEPT_PAUSE_MS, 0);
    return;
  }
  for (int n = 0; n < ACCEPTS_PER_WAKE && e->listening; n++) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    memset(&address, 0, sizeof address);
    int fd = accept4(e->listen_fd, (struct sockaddr *)&address, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        uv_poll_stop(&e->listen_poll);
        uv_timer_start(&e->pause_timer, on_pause_over, ACCEPT_PAUSE_MS, 0);
      }
      return; /* EAGAIN: nobody else waiting */
    }
    accept_one(e, fd, &address);
  }
}

static void on_engine_handle_closed(uv_handle_t *handle) {
  engine *e = handle->data;
  e->handles--;
  maybe_free_engine(e);
}

static void stop_accepting(engine *e) {
  if (!e->listening) return;
  e->listening = false;
  e->handles += 2;
  uv_close((uv_handle_t *)&e->listen_poll, on_engine_handle_closed);
  uv_close((uv_handle_t *)&e->pause_timer, on_engine_handle_closed);
  close(e->listen_fd);
  e->listen_fd = -1;
}

/* ---- JavaScript API ---- */

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_name(err), message);
  return NULL;
}

static engine *unwrap(napi_env env, napi_value value) {
  engine *e = NULL;
  if (napi_get_value_external(env, value, (void **)&e) != napi_ok) return NULL;
  return e;
}

static void on_handle_collected(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  engine *e = data;
  e->orphaned = true;
  maybe_free_engine(e);
}

static bool get_number(napi_env env, napi_value array, uint32_t index, double *out) {
  napi_value item;
  return napi_get_element(env, array, index, &item) == napi_ok &&
         napi_get_value_double(env, item, out) == napi_ok;
}

/* The target as a socket address: [4|6, ip, port] or [0, path]. */
static bool parse_target(napi_env env, napi_value array, engine *e) {
  double family = -1, port = 0;
  napi_value text;
  char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 1]; /* +1: a path too long shows */
  size_t length = 0;
  if (!get_number(env, array, 0, &family) || napi_get_element(env, array, 1, &text) != napi_ok ||
      napi_get_value_string_utf8(env, text, address, sizeof address, &length) != napi_ok)
    return false;
  memset(&e->target, 0, sizeof e->target);
  if (family == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&e->target;
    if (length == 0 || length >= sizeof un->sun_path) return false;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, address, length + 1);
    e->target_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + length + 1);
    return true;
  }
  if (!get_number(env, array, 2, &port) || port < 1 || port > 65535) return false;
  if (family == 4) {
    struct sockaddr_in *in = (struct sockaddr_in *)&e->target;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    e->target_len = sizeof *in;
    return inet_pton(AF_INET, address, &in->sin_addr) == 1;
  }
  if (family == 6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&e->target;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    e->target_len = sizeof *in6;
    return inet_pton(AF_INET6, address, &in6->sin6_addr) == 1;
  }
  return false;
}

static napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int32_t listen_fd = -1;
  napi_valuetype accept_kind = napi_undefined, close_kind = napi_undefined;
  if (argc == 5) {
    napi_typeof(env, args[3], &accept_kind);
    napi_typeof(env, args[4], &close_kind);
  }
  double max_connections = 0, connect_ms = 0, idle_ms = 0, bulk = 0;
  engine *e = calloc(1, sizeof *e);
  if (e == NULL) return throw_errno(env, ENOMEM, "forward engine");
  if (argc < 5 || napi_get_value_int32(env, args[0], &listen_fd) != napi_ok || listen_fd < 0 ||
      !parse_target(env, args[1], e) || !get_number(env, args[2], 0, &max_connections) ||
      !get_number(env, args[2], 1, &connect_ms) || !get_number(env, args[2], 2, &idle_ms) ||
      !get_number(env, args[2], 3, &bulk) || max_connections < 1 || connect_ms < 1 || idle_ms < 0 ||
      (accept_kind != napi_function && accept_kind != napi_null) || close_kind != napi_function) {
    free(e);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                          "create(listenFd, [family, address, port], [max, connectMs, idleMs, bulk], "
                          "onAccept | null, onClose)");
    return NULL;
  }
  e->env = env;
  e->max_connections = (uint32_t)max_connections;
  e->connect_timeout_ms = (uint64_t)connect_ms;
  e->idle_ms = (uint64_t)idle_ms;
  e->bulk_bytes = bulk;
  if (napi_get_uv_event_loop(env, &e->loop) != napi_ok) {
    free(e);
    return throw_errno(env, EINVAL, "forward engine");
  }
  e->listen_fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 0);
  if (e->listen_fd < 0) {
    int err = errno;
    free(e);
    return throw_errno(env, err, "forward engine");
  }
  int failed = uv_poll_init(e->loop, &e->listen_poll, e->listen_fd);
  if (failed != 0) {
    close(e->listen_fd);
    free(e);
    return throw_errno(env, -failed, "forward engine");
  }
  e->listen_poll.data = e;
  uv_timer_init(e->loop, &e->pause_timer);
  e->pause_timer.data = e;
  e->listening = true;
  if (accept_kind == napi_function) napi_create_reference(env, args[3], 1, &e->on_accept);
  napi_create_reference(env, args[4], 1, &e->on_close);
  napi_value name, handle;
  napi_create_string_utf8(env, "sockit:forward", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &e->context);
  if (napi_create_external(env, e, on_handle_collected, NULL, &handle) != napi_ok) {
    stop_accepting(e);
    e->orphaned = true;
    return throw_errno(env, ENOMEM, "forward engine");
  }
  uv_poll_start(&e->listen_poll, UV_READABLE, on_listen_ready);
  return handle;
}

static engine *engine_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  return argc == 1 ? unwrap(env, args[0]) : NULL;
}

static napi_value Count(napi_env env, napi_callback_info info) {
  engine *e = engine_arg(env, info);
  napi_value result;
  napi_create_uint32(env, e != NULL ? e->active : 0, &result);
  return result;
}

static napi_value StopAccepting(napi_env env, napi_callback_info info) {
  engine *e = engine_arg(env, info);
  if (e != NULL) stop_accepting(e);
  return NULL;
}

static napi_value AbortAll(napi_env env, napi_callback_info info) {
  engine *e = engine_arg(env, info);
  while (e != NULL && e->conns != NULL) finish(e->conns, "aborted", 0, true);
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback callback;
  } functions[] = {
      {"create", Create},
      {"count", Count},
      {"stopAccepting", StopAccepting},
      {"abortAll", AbortAll},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].callback, NULL, &fn);
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
  return exports;
}
