/* Benchmark job "keyed count": datagen of random keys -> key_by -> a running count per key in
 * keyed ValueState -> blackhole. Measures the keyed-state path (write-back cache + RocksDB).
 * Arguments: --events N (default 5,000,000) --keys K (default 100,000) --rate R (records/s over
 * all subtasks, default unlimited) --value-bytes B (bytes of each key's value, default 8: the
 * count alone; above 8 the count is followed by padding that does not compress, so that K keys
 * hold about K * B bytes of state: bench/savepoint_bench.py builds 1 GB this way). */
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

typedef struct count_fn {
    weir_state_id st;
    uint32_t value_bytes;
    uint8_t *buf; /* value_bytes; private to the subtask */
} count_fn_t;

static void count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    count_fn_t *c = udata;
    const void *val;
    uint32_t len;
    uint64_t n = 0;
    if (weir_value_get(ctx, c->st, &val, &len) == 0 && len == c->value_bytes) {
        memcpy(c->buf, val, len);
        memcpy(&n, val, sizeof n);
    } else if (c->value_bytes > sizeof n) {
        uint64_t x = 0x9e3779b97f4a7c15ULL; /* padding: xorshift seeded by the key */
        for (uint32_t i = 0; i < in->key_len; i++)
            x = (x ^ ((const uint8_t *)in->key)[i]) * 0x100000001b3ULL;
        for (uint32_t i = sizeof n; i < c->value_bytes; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c->buf[i] = (uint8_t)x;
        }
    }
    n++;
    memcpy(c->buf, &n, sizeof n);
    weir_value_put(ctx, c->st, c->buf, c->value_bytes);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_uint64(pk, n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    uint64_t events = 5000000, keys = 100000;
    double rate = 0;
    long value_bytes = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc) {
            events = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            keys = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = strtod(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--value-bytes") && i + 1 < argc) {
            value_bytes = atol(argv[++i]);
        } else {
            weir_job_error(
                job, "unknown argument '%s' (usage: --events N --keys K --rate R --value-bytes B)",
                argv[i]);
            return 1;
        }
    }
    if (value_bytes < 8 || value_bytes > (1 << 20)) {
        weir_job_error(job, "--value-bytes %ld: expected 8..1048576", value_bytes);
        return 1;
    }
    weir_datagen_opts_t opts = {
        .kind = WEIR_DATAGEN_RANDOM, .count = events, .random_max = keys, .seed = 7, .rate = rate};
    weir_stream_t *src = weir_set_uid(weir_source_datagen(job, "datagen", &opts), "datagen");
    count_fn_t *c = weir_job_alloc(job, sizeof *c);
    c->value_bytes = (uint32_t)value_bytes;
    c->buf = weir_job_alloc(job, (size_t)value_bytes);
    weir_stream_t *counted = weir_process(weir_key_by(src, NULL, NULL), "count", count, c);
    weir_set_uid(counted, "count");
    c->st = weir_value_state(counted, "count");
    weir_sink_blackhole(counted, "blackhole");
    return 0;
}

WEIR_PLUGIN("keyedcount", "random keys -> keyed running count in ValueState -> blackhole", define);
