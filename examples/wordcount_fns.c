/* The split and count functions of the word count examples (wordcount_fns.h).
 * Threading: each call runs on its subtask's thread; udata is private to it. */
#include "wordcount_fns.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

void wc_split(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (weir_unpack(ctx, in, &obj) != 0)
        return;
    if (obj.type != MSGPACK_OBJECT_STR) {
        weir_fail(ctx, "split: expected a string line, got msgpack type %d", (int)obj.type);
        return;
    }
    const char *s = obj.via.str.ptr;
    uint32_t n = obj.via.str.size;
    uint32_t i = 0;
    while (i < n) {
        while (i < n && is_space(s[i]))
            i++;
        uint32_t b = i;
        while (i < n && !is_space(s[i]))
            i++;
        if (i == b)
            break;
        uint32_t len = i - b;
        msgpack_packer *pk = weir_packer(ctx);
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, s + b, len);
        /* Keys are capped at WEIR_MAX_KEY_LEN bytes; longer words share a key by prefix. */
        weir_emit_packed(ctx, in->timestamp, s + b,
                         len < WEIR_MAX_KEY_LEN ? len : WEIR_MAX_KEY_LEN);
    }
}

void wc_count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    wc_count_t *wc = udata;
    msgpack_object obj;
    if (weir_unpack(ctx, in, &obj) != 0)
        return;
    if (obj.type != MSGPACK_OBJECT_STR) {
        weir_fail(ctx, "count: expected a string word, got msgpack type %d", (int)obj.type);
        return;
    }
    const void *val;
    uint32_t len;
    uint64_t count = 0;
    int rc = weir_value_get(ctx, wc->count, &val, &len);
    if (rc < 0) {
        weir_fail(ctx, "count: cannot read state 'count' (error %d)", rc);
        return;
    }
    if (rc == 0 && len == 8) {
        const uint8_t *b = val;
        for (int i = 7; i >= 0; i--)
            count = (count << 8) | b[i];
    }
    count++;
    uint8_t enc[8];
    for (int i = 0; i < 8; i++)
        enc[i] = (uint8_t)(count >> (8 * i)); /* little-endian */
    rc = weir_value_put(ctx, wc->count, enc, sizeof(enc));
    if (rc < 0) {
        weir_fail(ctx, "count: cannot write state 'count' (error %d)", rc);
        return;
    }
    char digits[24];
    int d = snprintf(digits, sizeof(digits), " %llu", (unsigned long long)count);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, obj.via.str.size + (size_t)d);
    msgpack_pack_str_body(pk, obj.via.str.ptr, obj.via.str.size);
    msgpack_pack_str_body(pk, digits, (size_t)d);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}
