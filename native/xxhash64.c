/*
 * XXH64 (xxHash64, seed 0) as a streaming hash for file transfers: create() makes a state,
 * update(state, bytes) feeds it, digest(state) returns the 16 hex digits so far (the state
 * goes on). The same digests as the xxhash-wasm package, which storage/checksum.ts falls back
 * to where this does not build; this one hashes the caller's bytes where they are, where the
 * WebAssembly one first copies them into its own memory, and runs at memory speed.
 * Algorithm: the XXH64 section of doc/xxhash_spec.md in the xxHash repository.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t P5 = 0x27D4EB2F165667C5ULL;

typedef struct {
  uint64_t total;
  uint64_t v[4];
  uint8_t buffered[32];
  size_t buffered_length;
} xxh64_state;

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Unaligned little-endian reads; memcpy compiles to one load on x86-64 and arm64. */
static inline uint64_t read64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline uint32_t read32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

static inline uint64_t round64(uint64_t acc, uint64_t input) {
  acc += input * P2;
  acc = rotl(acc, 31);
  return acc * P1;
}

static inline uint64_t merge(uint64_t acc, uint64_t value) {
  acc ^= round64(0, value);
  return acc * P1 + P4;
}

static void reset(xxh64_state *s) {
  memset(s, 0, sizeof *s);
  s->v[0] = P1 + P2;
  s->v[1] = P2;
  s->v[2] = 0;
  s->v[3] = (uint64_t)0 - P1;
}

static void stripes(xxh64_state *s, const uint8_t *p, const uint8_t *end) {
  uint64_t v0 = s->v[0], v1 = s->v[1], v2 = s->v[2], v3 = s->v[3];
  for (; p + 32 <= end; p += 32) {
    v0 = round64(v0, read64(p));
    v1 = round64(v1, read64(p + 8));
    v2 = round64(v2, read64(p + 16));
    v3 = round64(v3, read64(p + 24));
  }
  s->v[0] = v0, s->v[1] = v1, s->v[2] = v2, s->v[3] = v3;
}

static void update(xxh64_state *s, const uint8_t *p, size_t length) {
  const uint8_t *end = p + length;
  s->total += length;
  if (s->buffered_length + length < 32) {
    memcpy(s->buffered + s->buffered_length, p, length);
    s->buffered_length += length;
    return;
  }
  if (s->buffered_length > 0) {
    size_t fill = 32 - s->buffered_length;
    memcpy(s->buffered + s->buffered_length, p, fill);
    stripes(s, s->buffered, s->buffered + 32);
    p += fill;
    s->buffered_length = 0;
  }
  const uint8_t *last = p + ((size_t)(end - p) & ~(size_t)31);
  stripes(s, p, last);
  s->buffered_length = (size_t)(end - last);
  memcpy(s->buffered, last, s->buffered_length);
}

static uint64_t digest(const xxh64_state *s) {
  uint64_t h;
  if (s->total >= 32) {
    h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
    for (int i = 0; i < 4; i++) h = merge(h, s->v[i]);
  } else {
    h = s->v[2] + P5;
  }
  h += s->total;
  const uint8_t *p = s->buffered, *end = s->buffered + s->buffered_length;
  for (; p + 8 <= end; p += 8) h = rotl(h ^ round64(0, read64(p)), 27) * P1 + P4;
  if (p + 4 <= end) {
    h = rotl(h ^ ((uint64_t)read32(p) * P1), 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; p++) h = rotl(h ^ (*p * P5), 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

static void finalize(napi_env env, void *data, void *hint) { free(data); }

static xxh64_state *state_of(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a state from create()");
    return NULL;
  }
  return data;
}

static napi_value Create(napi_env env, napi_callback_info info) {
  xxh64_state *s = malloc(sizeof *s);
  if (s == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  reset(s);
  napi_value external;
  if (napi_create_external(env, s, finalize, NULL, &external) != napi_ok) {
    free(s);
    return NULL;
  }
  return external;
}

static napi_value Update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "update(state, bytes)");
    return NULL;
  }
  xxh64_state *s = state_of(env, args[0]);
  if (s == NULL) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *data;
  bool is_typed = false;
  napi_is_typedarray(env, args[1], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, args[1], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "update(state, bytes): bytes must be a Uint8Array");
    return NULL;
  }
  if (length > 0) update(s, data, length);
  return NULL;
}

static napi_value Digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "digest(state)");
    return NULL;
  }
  xxh64_state *s = state_of(env, args[0]);
  if (s == NULL) return NULL;
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)digest(s));
  napi_value result;
  napi_create_string_latin1(env, hex, 16, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "create", NAPI_AUTO_LENGTH, Create, NULL, &fn);
  napi_set_named_property(env, exports, "create", fn);
  napi_create_function(env, "update", NAPI_AUTO_LENGTH, Update, NULL, &fn);
  napi_set_named_property(env, exports, "update", fn);
  napi_create_function(env, "digest", NAPI_AUTO_LENGTH, Digest, NULL, &fn);
  napi_set_named_property(env, exports, "digest", fn);
  return exports;
}
