/* A count-and-sum window aggregate shared by the window tests (tests/plugins/windows.c and
 * tests/unit/test_task.c): records carry a msgpack unsigned value; the accumulator is the msgpack
 * array [count, sum]; the result [start, end, count, sum] is emitted with the window's key at
 * end - 1. Header-only (static functions): each test binary or plugin gets its own copy, so the
 * plugin stays a single shared object linking nothing but the public API. */
#ifndef WEIR_TESTS_COUNTSUM_WINDOW_H
#define WEIR_TESTS_COUNTSUM_WINDOW_H

#include <msgpack.h>
#include <stdint.h>

#include <weir/weir.h>

/* Element @p i of an accumulator; -1 for one that is not [count, sum] (so a damaged accumulator
 * shows in the results instead of passing as an empty one). */
static inline int64_t countsum_at(const msgpack_object *o, uint32_t i) {
    return o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2 ? o->via.array.ptr[i].via.i64
                                                                     : -1;
}

static inline void countsum_pack(msgpack_packer *pk, int64_t count, int64_t sum) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, count);
    msgpack_pack_int64(pk, sum);
}

static inline void countsum_create(msgpack_packer *out, void *udata) {
    (void)udata;
    countsum_pack(out, 0, 0);
}

static inline void countsum_add(const msgpack_object *acc, const weir_record_t *in,
                                msgpack_packer *out, void *udata) {
    (void)udata;
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    msgpack_object o;
    size_t off = 0;
    int64_t v = 0;
    if (msgpack_unpack(in->value, in->value_len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS)
        v = (int64_t)o.via.u64;
    msgpack_zone_destroy(&z);
    countsum_pack(out, countsum_at(acc, 0) + 1, countsum_at(acc, 1) + v);
}

static inline void countsum_merge(const msgpack_object *a, const msgpack_object *b,
                                  msgpack_packer *out, void *udata) {
    (void)udata;
    countsum_pack(out, countsum_at(a, 0) + countsum_at(b, 0),
                  countsum_at(a, 1) + countsum_at(b, 1));
}

static inline void countsum_result(weir_ctx_t *ctx, const weir_window_t *w,
                                   const msgpack_object *acc, void *udata) {
    (void)udata;
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int64(pk, w->start);
    msgpack_pack_int64(pk, w->end);
    msgpack_pack_int64(pk, countsum_at(acc, 0));
    msgpack_pack_int64(pk, countsum_at(acc, 1));
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    weir_emit_packed(ctx, w->end - 1, key, kl);
}

#endif
