/*
 * Sealed copies: one direction of a tunnel stream's data channel over TLS, encrypted and
 * authenticated in C on Node's loop with no JavaScript per record (docs/protocol.md "Sealed
 * channels").
 *
 * A stream's bytes inside one TLS connection cost Node's TLS machinery per 16 KiB record (a
 * 'data' event, copies into and out of its buffers) and the tunnel's frame per 64 KiB. A sealed
 * channel is its own TCP connection whose TLS handshake only agreed the keys (the exporter,
 * RFC 5705); after it, each end reads its local socket, seals what it read as one record with
 * AES-128-GCM and writes it, all in the poll callback.
 *
 * Record: a 4-byte header, then the ciphertext and its 16-byte tag.
 *   header[0]    type: 0 data, 1 end (no more data this way; its plaintext is empty)
 *   header[1..3] length of ciphertext + tag, big-endian, 16 to RECORD_PLAIN_MAX + 16
 * The header is the additional data; the nonce is the direction's 12-byte IV with the record's
 * sequence number (from 0) XORed into its last 8 bytes, as TLS 1.3 does. Each direction has its
 * own key, so no nonce is used twice under one key. A stream that ends without an end record
 * was cut (EPROTO): a truncation is never taken for an end of file.
 *
 * available() -> whether AES-GCM was found in this process (Node's own OpenSSL, looked up at
 *   run time: no link-time dependency, so a Node without it leaves sealed channels off).
 * startSeal(srcFd, dstFd, key, iv, onDone, prefix?) -> handle
 *   Reads plaintext from srcFd (after `prefix`, bytes the caller read already), writes records
 *   to dstFd. At srcFd's end of file writes the end record, shuts dstFd's sending side down and
 *   calls onDone(null, bytes); on a failure onDone(errnoName, bytes).
 * startOpen(srcFd, dstFd, key, iv, onDone, prefix?) -> handle
 *   Reads records from srcFd (after `prefix`), writes their plaintext to dstFd. After the end
 *   record's bytes are all written, onDone(null, bytes) (the caller ends dstFd); a record that
 *   does not authenticate is EBADMSG, a bad length (or an empty data record) EMSGSIZE, an end of file before the end
 *   record EPROTO. What follows the end record is not read.
 * stop(handle), moved(handle): as native/splice.c's.
 *
 * Both descriptors are dup()ed and polled on their own; the caller must neither read srcFd
 * nor write dstFd meanwhile.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "watched.h"

#define HEADER_BYTES 4
#define TAG_BYTES 16
#define KEY_BYTES 16
#define IV_BYTES 12
/* A record's largest plaintext: reads of a loopback socket rarely return more. */
#define RECORD_PLAIN_MAX (256 * 1024)
#define RECORD_MAX (HEADER_BYTES + RECORD_PLAIN_MAX + TAG_BYTES)
/* The opener reads up to this much at once: several records per read when they are small. */
#define OPEN_BUFFER (2 * RECORD_MAX)
#define TYPE_DATA 0
#define TYPE_END 1
/*
 * Plaintext one wake-up moves at most. The poll is level-triggered, so what is left is taken at
 * the loop's next turn, after the other descriptors had theirs: without a budget a stream whose
 * source keeps up would hold the loop until its socket buffer filled, and streams finish in
 * turns instead of together.
 */
#define WAKE_BUDGET (256 * 1024)

/* ---- AES-128-GCM from the OpenSSL already in the process ------------------------------- */

typedef struct evp_cipher_ctx EVP_CIPHER_CTX;
typedef struct evp_cipher EVP_CIPHER;
#define CTRL_GCM_GET_TAG 0x10
#define CTRL_GCM_SET_TAG 0x11

static struct {
  bool looked_up;
  bool found;
  EVP_CIPHER_CTX *(*ctx_new)(void);
  void (*ctx_free)(EVP_CIPHER_CTX *);
  int (*ctx_ctrl)(EVP_CIPHER_CTX *, int, int, void *);
  const EVP_CIPHER *(*aes_128_gcm)(void);
  int (*encrypt_init)(EVP_CIPHER_CTX *, const EVP_CIPHER *, void *, const unsigned char *, const unsigned char *);
  int (*decrypt_init)(EVP_CIPHER_CTX *, const EVP_CIPHER *, void *, const unsigned char *, const unsigned char *);
  int (*encrypt_update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
  int (*decrypt_update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
  int (*encrypt_final)(EVP_CIPHER_CTX *, unsigned char *, int *);
  int (*decrypt_final)(EVP_CIPHER_CTX *, unsigned char *, int *);
} evp;

static bool look_up_evp(void) {
  if (evp.looked_up) return evp.found;
  evp.looked_up = true;
  void *all = RTLD_DEFAULT;
  *(void **)&evp.ctx_new = dlsym(all, "EVP_CIPHER_CTX_new");
  *(void **)&evp.ctx_free = dlsym(all, "EVP_CIPHER_CTX_free");
  *(void **)&evp.ctx_ctrl = dlsym(all, "EVP_CIPHER_CTX_ctrl");
  *(void **)&evp.aes_128_gcm = dlsym(all, "EVP_aes_128_gcm");
  *(void **)&evp.encrypt_init = dlsym(all, "EVP_EncryptInit_ex");
  *(void **)&evp.decrypt_init = dlsym(all, "EVP_DecryptInit_ex");
  *(void **)&evp.encrypt_update = dlsym(all, "EVP_EncryptUpdate");
  *(void **)&evp.decrypt_update = dlsym(all, "EVP_DecryptUpdate");
  *(void **)&evp.encrypt_final = dlsym(all, "EVP_EncryptFinal_ex");
  *(void **)&evp.decrypt_final = dlsym(all, "EVP_DecryptFinal_ex");
  evp.found = evp.ctx_new && evp.ctx_free && evp.ctx_ctrl && evp.aes_128_gcm && evp.encrypt_init &&
              evp.decrypt_init && evp.encrypt_update && evp.decrypt_update && evp.encrypt_final &&
              evp.decrypt_final;
  return evp.found;
}

/* ---- one direction ----------------------------------------------------------------------- */

typedef struct sealed sealed;

struct sealed {
  watched src;
  watched dst;
  bool sealing; /* startSeal; else startOpen */
  EVP_CIPHER_CTX *ctx;
  unsigned char iv[IV_BYTES];
  uint64_t sequence;
  unsigned char *buffer;
  size_t capacity;
  /* Bytes to write to dst: buffer[out .. out + out_len). */
  size_t out;
  size_t out_len;
  /* The opener's unprocessed input: buffer[start .. end). */
  size_t start;
  size_t end;
  /* Bytes the caller read before us, taken first. */
  unsigned char *prefix;
  size_t prefix_len;
  size_t prefix_used;
  bool source_ended; /* seal: src's end of file; open: the end record came */
  bool end_sealed;   /* seal: the end record is in the buffer (or out) */
  double moved;      /* plaintext bytes */
  bool finished;
  int closing;
  napi_env env;
  napi_ref on_done;
  napi_async_context context;
  sealed **slot;
};

static void on_handle_closed(uv_handle_t *handle) {
  sealed *s = handle->data;
  if (--s->closing == 0) free(s);
}

static void release(sealed *s) {
  if (s->finished) return;
  s->finished = true;
  if (s->slot != NULL) *s->slot = NULL;
  if (s->on_done != NULL) napi_delete_reference(s->env, s->on_done);
  if (s->context != NULL) napi_async_destroy(s->env, s->context);
  close_watched(&s->src, &s->closing, on_handle_closed);
  close_watched(&s->dst, &s->closing, on_handle_closed);
  if (s->ctx != NULL) evp.ctx_free(s->ctx);
  s->ctx = NULL;
  free(s->buffer);
  s->buffer = NULL;
  free(s->prefix);
  s->prefix = NULL;
  if (s->closing == 0) free(s);
}

static void release_owner(void *owner) { release(owner); }

static void finish(sealed *s, int err) {
  call_done(s->env, &s->on_done, &s->context, err, s->moved, release_owner, s);
}

static void on_ready(uv_poll_t *poll, int status, int events);

static int watch(watched *w, int events) {
  if (w->events == events) return 0;
  w->events = events;
  int failed = events == 0 ? uv_poll_stop(&w->poll) : uv_poll_start(&w->poll, events, on_ready);
  return failed < 0 ? -failed : failed;
}

/* This record's nonce: the IV with the sequence number XORed into its last 8 bytes. */
static void next_nonce(sealed *s, unsigned char nonce[IV_BYTES]) {
  memcpy(nonce, s->iv, IV_BYTES);
  uint64_t sequence = s->sequence++;
  for (int i = 0; i < 8; i++) nonce[IV_BYTES - 1 - i] ^= (unsigned char)(sequence >> (8 * i));
}

/* Seals `length` plaintext bytes at buffer + HEADER_BYTES as a record of `type`; returns 0 or EIO. */
static int seal_record(sealed *s, int type, size_t length) {
  unsigned char *record = s->buffer;
  size_t sealed_length = length + TAG_BYTES;
  record[0] = (unsigned char)type;
  record[1] = (unsigned char)(sealed_length >> 16);
  record[2] = (unsigned char)(sealed_length >> 8);
  record[3] = (unsigned char)sealed_length;
  unsigned char nonce[IV_BYTES];
  next_nonce(s, nonce);
  unsigned char *body = record + HEADER_BYTES;
  int n = 0;
  if (evp.encrypt_init(s->ctx, NULL, NULL, NULL, nonce) != 1 ||
      evp.encrypt_update(s->ctx, NULL, &n, record, HEADER_BYTES) != 1 ||
      (length > 0 && evp.encrypt_update(s->ctx, body, &n, body, (int)length) != 1) ||
      evp.encrypt_final(s->ctx, body + length, &n) != 1 ||
      evp.ctx_ctrl(s->ctx, CTRL_GCM_GET_TAG, TAG_BYTES, body + length) != 1)
    return EIO;
  s->out = 0;
  s->out_len = HEADER_BYTES + sealed_length;
  return 0;
}

/*
 * Writes buffer[out ..]; returns 0 (all out, or `*waiting`: dst polled for writable and the
 * source no more, since nothing more fits until dst drains) or an errno.
 */
static int write_out(sealed *s, bool *waiting) {
  *waiting = false;
  while (s->out_len > 0) {
    /* Both ends are sockets: a closed reader is EPIPE here, never a SIGPIPE for the process. */
    ssize_t n = send(s->dst.fd, s->buffer + s->out, s->out_len, MSG_NOSIGNAL);
    if (n > 0) {
      s->out += (size_t)n;
      s->out_len -= (size_t)n;
      if (!s->sealing) s->moved += (double)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return errno;
    *waiting = true;
    int failed = watch(&s->dst, UV_WRITABLE);
    return failed != 0 ? failed : watch(&s->src, 0);
  }
  return watch(&s->dst, 0);
}

/*
 * The wake-up's budget is spent: what is left waits for the loop's next turn. Input already in
 * hand (a prefix, the opener's buffered records) needs a poll that fires without more coming.
 */
static int next_turn(sealed *s) {
  if (s->prefix_used < s->prefix_len || s->end - s->start >= HEADER_BYTES)
    return watch(&s->dst, UV_WRITABLE);
  return watch(&s->src, UV_READABLE);
}

/* The sealing direction's round. Returns 0 (done: s->end_sealed and all out, or waiting) or an errno. */
static int seal_pump(sealed *s, bool *done) {
  *done = false;
  size_t budget = WAKE_BUDGET;
  for (;;) {
    bool waiting = false;
    int err = write_out(s, &waiting);
    if (err != 0 || waiting) return err;
    if (s->end_sealed) {
      /* The end record is out: the peer reads end of file after it. */
      if (shutdown(s->dst.fd, SHUT_WR) != 0 && errno != ENOTCONN) return errno;
      *done = true;
      return 0;
    }
    if (s->source_ended) {
      err = seal_record(s, TYPE_END, 0);
      if (err != 0) return err;
      s->end_sealed = true;
      continue;
    }
    if (budget == 0) return next_turn(s);
    unsigned char *body = s->buffer + HEADER_BYTES;
    size_t length;
    if (s->prefix_used < s->prefix_len) {
      length = s->prefix_len - s->prefix_used;
      if (length > RECORD_PLAIN_MAX) length = RECORD_PLAIN_MAX;
      memcpy(body, s->prefix + s->prefix_used, length);
      s->prefix_used += length;
    } else {
      ssize_t n = read(s->src.fd, body, RECORD_PLAIN_MAX);
      if (n == 0) {
        s->source_ended = true;
        continue;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return errno;
        return watch(&s->src, UV_READABLE);
      }
      length = (size_t)n;
    }
    err = seal_record(s, TYPE_DATA, length);
    if (err != 0) return err;
    s->moved += (double)length;
    budget = length >= budget ? 0 : budget - length;
  }
}

/*
 * Authenticates and decrypts the complete record at buffer[start ..], if there is one: its
 * plaintext becomes what is to write. Returns 0 (`*complete` says whether a record was there)
 * or an errno.
 */
static int open_record(sealed *s, bool *complete) {
  *complete = false;
  size_t have = s->end - s->start;
  if (have < HEADER_BYTES) return 0;
  unsigned char *record = s->buffer + s->start;
  size_t sealed_length = ((size_t)record[1] << 16) | ((size_t)record[2] << 8) | record[3];
  int type = record[0];
  if (sealed_length < TAG_BYTES || sealed_length > RECORD_PLAIN_MAX + TAG_BYTES ||
      (type != TYPE_DATA && type != TYPE_END) || (type == TYPE_END && sealed_length != TAG_BYTES) ||
      (type == TYPE_DATA && sealed_length == TAG_BYTES)) /* a sealer never sends an empty data record */
    return EMSGSIZE;
  if (have < HEADER_BYTES + sealed_length) return 0;
  size_t length = sealed_length - TAG_BYTES;
  unsigned char *body = record + HEADER_BYTES;
  unsigned char nonce[IV_BYTES];
  next_nonce(s, nonce);
  int n = 0;
  if (evp.decrypt_init(s->ctx, NULL, NULL, NULL, nonce) != 1 ||
      evp.decrypt_update(s->ctx, NULL, &n, record, HEADER_BYTES) != 1 ||
      (length > 0 && evp.decrypt_update(s->ctx, body, &n, body, (int)length) != 1) ||
      evp.ctx_ctrl(s->ctx, CTRL_GCM_SET_TAG, TAG_BYTES, body + length) != 1 ||
      evp.decrypt_final(s->ctx, body + length, &n) != 1)
    return EBADMSG;
  *complete = true;
  s->out = s->start + HEADER_BYTES;
  s->out_len = length;
  s->start += HEADER_BYTES + sealed_length;
  if (type == TYPE_END) s->source_ended = true;
  return 0;
}

/* The opening direction's round; `*done` once the end record came and everything is written. */
static int open_pump(sealed *s, bool *done) {
  *done = false;
  size_t budget = WAKE_BUDGET;
  for (;;) {
    bool waiting = false;
    int err = write_out(s, &waiting);
    if (err != 0 || waiting) return err;
    if (s->source_ended) {
      *done = true;
      return 0;
    }
    if (budget == 0) return next_turn(s);
    bool complete = false;
    size_t before = s->start;
    err = open_record(s, &complete);
    if (err != 0) return err;
    if (complete) {
      /* Counted on the wire, so a peer's empty records cannot hold the loop either. */
      size_t consumed = s->start - before;
      budget = consumed >= budget ? 0 : budget - consumed;
      continue;
    }
    /* An incomplete record: move it to the front and read behind it. */
    if (s->start > 0) {
      memmove(s->buffer, s->buffer + s->start, s->end - s->start);
      s->end -= s->start;
      s->start = 0;
    }
    if (s->prefix_used < s->prefix_len) {
      size_t length = s->prefix_len - s->prefix_used;
      if (length > s->capacity - s->end) length = s->capacity - s->end;
      memcpy(s->buffer + s->end, s->prefix + s->prefix_used, length);
      s->prefix_used += length;
      s->end += length;
      continue;
    }
    ssize_t n = read(s->src.fd, s->buffer + s->end, s->capacity - s->end);
    if (n == 0) return EPROTO; /* cut before the end record */
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return errno;
      return watch(&s->src, UV_READABLE);
    }
    s->end += (size_t)n;
  }
}

static void step(sealed *s) {
  bool done = false;
  int err = s->sealing ? seal_pump(s, &done) : open_pump(s, &done);
  if (err != 0 || done) finish(s, err);
}

static void on_ready(uv_poll_t *poll, int status, int events) {
  (void)events;
  sealed *s = poll->data;
  if (s->finished) return;
  /* POLLERR (libuv stopped this poll): the read or write itself tells what happened (a reset, EPIPE). */
  if (status < 0) (poll == &s->src.poll ? &s->src : &s->dst)->events = 0;
  step(s);
}

static void on_handle_collected(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sealed **slot = data;
  if (*slot != NULL) (*slot)->slot = NULL;
  free(slot);
}

static bool buffer_of(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_buffer = false;
  return napi_is_buffer(env, value, &is_buffer) == napi_ok && is_buffer &&
         napi_get_buffer_info(env, value, data, length) == napi_ok;
}

/* startSeal() and startOpen(): the arguments, the direction, its descriptors, its first poll. */
static napi_value begin(napi_env env, napi_callback_info info, bool sealing) {
  const char *usage = sealing ? "startSeal(srcFd, dstFd, key, iv, onDone, prefix?)"
                              : "startOpen(srcFd, dstFd, key, iv, onDone, prefix?)";
  if (!look_up_evp()) {
    napi_throw_error(env, "ENOSYS", "AES-GCM is not available in this process");
    return NULL;
  }
  size_t argc = 6;
  napi_value args[6];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int32_t src = -1, dst = -1;
  void *key = NULL, *iv = NULL, *prefix = NULL;
  size_t key_length = 0, iv_length = 0, prefix_length = 0;
  napi_valuetype kind = napi_undefined, prefix_kind = napi_undefined;
  if (argc >= 5) napi_typeof(env, args[4], &kind);
  if (argc >= 6) napi_typeof(env, args[5], &prefix_kind);
  if (argc < 5 || napi_get_value_int32(env, args[0], &src) != napi_ok ||
      napi_get_value_int32(env, args[1], &dst) != napi_ok || src < 0 || dst < 0 ||
      !buffer_of(env, args[2], &key, &key_length) || key_length != KEY_BYTES ||
      !buffer_of(env, args[3], &iv, &iv_length) || iv_length != IV_BYTES || kind != napi_function ||
      (prefix_kind != napi_undefined && !buffer_of(env, args[5], &prefix, &prefix_length))) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", usage);
    return NULL;
  }
  uv_loop_t *loop = NULL;
  sealed *s = calloc(1, sizeof *s);
  if (s == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(s);
    return throw_errno(env, ENOMEM, "sealed copy");
  }
  s->sealing = sealing;
  s->env = env;
  memcpy(s->iv, iv, IV_BYTES);
  s->capacity = sealing ? RECORD_MAX : OPEN_BUFFER;
  s->buffer = malloc(s->capacity);
  int err = s->buffer == NULL ? ENOMEM : 0;
  if (err == 0 && prefix_length > 0) {
    s->prefix = malloc(prefix_length);
    if (s->prefix == NULL) err = ENOMEM;
    else memcpy(s->prefix, prefix, prefix_length);
    s->prefix_len = prefix_length;
  }
  if (err == 0) {
    s->ctx = evp.ctx_new();
    int (*init)(EVP_CIPHER_CTX *, const EVP_CIPHER *, void *, const unsigned char *, const unsigned char *) =
        sealing ? evp.encrypt_init : evp.decrypt_init;
    if (s->ctx == NULL || init(s->ctx, evp.aes_128_gcm(), NULL, key, NULL) != 1) err = EIO;
  }
  if (err == 0) err = open_watched(loop, s, &s->src, src);
  if (err == 0) err = open_watched(loop, s, &s->dst, dst);
  napi_value name;
  napi_create_string_utf8(env, sealing ? "sockit:seal" : "sockit:open", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->context);
  napi_create_reference(env, args[4], 1, &s->on_done);
  if (err != 0) {
    release(s);
    return throw_errno(env, err, "sealed copy");
  }
  sealed **slot = malloc(sizeof *slot);
  napi_value handle;
  if (slot == NULL || napi_create_external(env, slot, on_handle_collected, NULL, &handle) != napi_ok) {
    free(slot);
    release(s);
    return throw_errno(env, ENOMEM, "sealed copy");
  }
  *slot = s;
  s->slot = slot;
  /* Never calls onDone before it returned: the first round waits for a poll. Prefix bytes are
   * taken then too; the source being readable or not, the destination is writable at once. */
  err = watch(s->prefix_len > 0 ? &s->dst : &s->src, s->prefix_len > 0 ? UV_WRITABLE : UV_READABLE);
  if (err != 0) {
    release(s);
    return throw_errno(env, err, "sealed copy");
  }
  return handle;
}

static napi_value StartSeal(napi_env env, napi_callback_info info) { return begin(env, info, true); }

static napi_value StartOpen(napi_env env, napi_callback_info info) { return begin(env, info, false); }

static napi_value Available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, look_up_evp(), &result);
  return result;
}

static napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  sealed **slot = NULL;
  if (argc == 1) napi_get_value_external(env, args[0], (void **)&slot);
  if (slot != NULL && *slot != NULL) release(*slot);
  return NULL;
}

static napi_value Moved(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1], result;
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  sealed **slot = NULL;
  if (argc == 1) napi_get_value_external(env, args[0], (void **)&slot);
  napi_create_double(env, slot != NULL && *slot != NULL ? (*slot)->moved : -1, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"available", NULL, Available, NULL, NULL, NULL, napi_default, NULL},
      {"startSeal", NULL, StartSeal, NULL, NULL, NULL, napi_default, NULL},
      {"startOpen", NULL, StartOpen, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, Stop, NULL, NULL, NULL, napi_default, NULL},
      {"moved", NULL, Moved, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}
