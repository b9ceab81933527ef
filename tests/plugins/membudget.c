/* Test plugin for the task manager's memory budget (tests/integration/31_memory_budget.py): two
 * keyed vertices, each with a value state per key, over --keys K distinct keys, unbounded.
 *
 *   events (datagen sequence 0, 1, 2, ..., unbounded, --rate R records/s, uid "events") ->
 *   key_by (k = value mod K, 8 bytes big-endian) -> count_a (weir_process, uid "count_a": value
 *   state "n" of --value-bytes B bytes: a count then padding) -> key_by (k XOR a constant: other
 *   key groups) -> count_b (uid "count_b", the same) -> blackhole (uid "out")
 *
 * So the first K events write K new keys in each keyed vertex and every later one updates an
 * existing key (in the order they were written: the oldest first, far from any cache).
 * count_b checks its state against count_a's: key k of count_a feeds exactly key k ^ C of
 * count_b over one FIFO channel, so count_b's new count must equal the count_a record it got; a
 * mismatch (state lost or corrupted under memory pressure, in either) fails the subtask.
 * Threading: define() runs once per subtask; its configuration is read-only afterwards. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#define USAGE "--keys K --rate R --value-bytes B"

typedef struct count_fn {
    weir_state_id st;
    uint32_t value_bytes;
    uint64_t keys;
    bool check;   /* count_b: the input value is count_a's count of the key */
    uint8_t *buf; /* value_bytes; private to the subtask */
} count_fn_t;

static uint64_t get_be64(const void *p) {
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void put_be64(void *p, uint64_t v) {
    uint8_t *b = p;
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static uint32_t key_mod(const weir_record_t *in, void *out, void *udata) {
    const uint64_t *keys = udata;
    put_be64(out, (in->key_len == 8 ? get_be64(in->key) : 0) % *keys);
    return 8;
}

static uint32_t key_xor(const weir_record_t *in, void *out, void *udata) {
    (void)udata;
    put_be64(out, (in->key_len == 8 ? get_be64(in->key) : 0) ^ 0x5bd1e9955bd1e995ULL);
    return 8;
}

static void count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    count_fn_t *c = udata;
    const void *val;
    uint32_t len;
    uint64_t n = 0;
    if (weir_value_get(ctx, c->st, &val, &len) == 0) {
        if (len != c->value_bytes) {
            weir_fail(ctx, "value of %u bytes, expected %u", len, c->value_bytes);
            return;
        }
        memcpy(&n, val, sizeof n);
    } else {
        for (uint32_t i = sizeof n; i < c->value_bytes; i++) /* padding from the key */
            c->buf[i] = (uint8_t)(((const uint8_t *)in->key)[i % in->key_len] * 131u + i);
    }
    n++;
    msgpack_object o;
    if (c->check && (weir_unpack(ctx, in, &o) != 0 || o.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                     o.via.u64 != n)) {
        weir_fail(ctx, "count %llu of a key, its upstream count %llu: state was lost",
                  (unsigned long long)n, (unsigned long long)o.via.u64);
        return;
    }
    memcpy(c->buf, &n, sizeof n);
    weir_value_put(ctx, c->st, c->buf, c->value_bytes);
    msgpack_pack_uint64(weir_packer(ctx), n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static count_fn_t *counter(weir_job_t *job, uint64_t keys, uint32_t value_bytes) {
    count_fn_t *c = weir_job_alloc(job, sizeof *c);
    c->value_bytes = value_bytes;
    c->keys = keys;
    c->buf = weir_job_alloc(job, value_bytes);
    return c;
}

static int define(weir_job_t *job, int argc, char **argv) {
    uint64_t *keys = weir_job_alloc(job, sizeof *keys);
    *keys = 1000000;
    double rate = 0;
    long value_bytes = 32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            *keys = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = strtod(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--value-bytes") && i + 1 < argc) {
            value_bytes = atol(argv[++i]);
        } else {
            weir_job_error(job, "unknown argument '%s' (usage: " USAGE ")", argv[i]);
            return 1;
        }
    }
    if (*keys == 0 || value_bytes < 8 || value_bytes > 4096) {
        weir_job_error(job, "--keys must be > 0 and --value-bytes 8..4096 (usage: " USAGE ")");
        return 1;
    }
    weir_datagen_opts_t o = {.kind = WEIR_DATAGEN_SEQUENCE, .rate = rate};
    weir_stream_t *s = weir_set_uid(weir_source_datagen(job, "events", &o), "events");
    count_fn_t *a = counter(job, *keys, (uint32_t)value_bytes);
    s = weir_set_uid(weir_process(weir_key_by(s, key_mod, keys), "count_a", count, a), "count_a");
    a->st = weir_value_state(s, "n");
    count_fn_t *b = counter(job, *keys, (uint32_t)value_bytes);
    b->check = true;
    s = weir_set_uid(weir_process(weir_key_by(s, key_xor, NULL), "count_b", count, b), "count_b");
    b->st = weir_value_state(s, "n");
    weir_set_uid(weir_sink_blackhole(s, "out"), "out");
    return 0;
}

WEIR_PLUGIN("membudget", "two keyed counts over K distinct keys, unbounded: " USAGE, define);
