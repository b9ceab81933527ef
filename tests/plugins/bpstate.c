/* Test plugin for savepoints under backpressure (tests/integration/19_savepoint_backpressure.py):
 * keyed state of a known size behind a sink that becomes slow.
 *
 *   numbers (datagen, unbounded, random keys 0..K-1, uid "numbers") -> key_by -> count (uid
 *   "count", value state "v": an 8-byte count followed by padding, VALUE_BYTES in all, bytes
 *   that do not compress) -> rebalance -> slow-sink (after its first FAST records, at most RATE
 *   records per second per subtask: it sleeps)
 *
 * Arguments: --keys K (default 20000) --value-bytes B (default 512, at least 8) --fast N
 * (default 100000) --sink-rate R (default 500).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weir/weir.h>

#define USAGE "usage: bpstate.so [--keys K] [--value-bytes B] [--fast N] [--sink-rate R]"

typedef struct count_fn {
    weir_state_id st;
    uint32_t value_bytes;
    uint8_t *buf; /* value_bytes */
} count_fn_t;

typedef struct slow {
    long per_sec;
    long fast;
    long n;
} slow_t;

static void count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    count_fn_t *c = udata;
    const void *val;
    uint32_t len;
    uint64_t n = 0;
    int rc = weir_value_get(ctx, c->st, &val, &len);
    if (rc < 0) {
        weir_fail(ctx, "count: state error %d", rc);
        return;
    }
    if (rc == 0 && len == c->value_bytes) {
        memcpy(&n, val, sizeof n);
        memcpy(c->buf, val, len);
    } else {
        /* First record of the key: padding from a xorshift of the key (incompressible). */
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        for (uint32_t i = 0; i < in->key_len; i++)
            x = (x ^ ((const uint8_t *)in->key)[i]) * 0x100000001b3ULL;
        for (uint32_t i = 8; i < c->value_bytes; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c->buf[i] = (uint8_t)x;
        }
    }
    n++;
    memcpy(c->buf, &n, sizeof n);
    rc = weir_value_put(ctx, c->st, c->buf, c->value_bytes);
    if (rc < 0) {
        weir_fail(ctx, "count: state error %d", rc);
        return;
    }
    msgpack_pack_uint64(weir_packer(ctx), n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static void slow_sink(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    slow_t *s = udata;
    if (++s->n <= s->fast)
        return;
    /* Sleep 10 ms after every per_sec/100 records: at most per_sec records per second. */
    long batch = s->per_sec / 100 > 0 ? s->per_sec / 100 : 1;
    if (s->n % batch == 0) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int define(weir_job_t *job, int argc, char **argv) {
    uint64_t keys = 20000;
    long value_bytes = 512;
    slow_t *s = weir_job_alloc(job, sizeof *s);
    s->per_sec = 500;
    s->fast = 100000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; " USAGE, a);
            return 1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--keys")) {
            keys = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--value-bytes")) {
            value_bytes = atol(v);
        } else if (!strcmp(a, "--fast")) {
            s->fast = atol(v);
        } else if (!strcmp(a, "--sink-rate")) {
            s->per_sec = atol(v);
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (keys == 0 || value_bytes < 8 || value_bytes > (1 << 20) || s->per_sec <= 0) {
        weir_job_error(job, "--keys >= 1, --value-bytes in 8..1048576, --sink-rate >= 1; " USAGE);
        return 1;
    }
    weir_datagen_opts_t opts = {.kind = WEIR_DATAGEN_RANDOM, .random_max = keys, .seed = 19};
    weir_stream_t *src = weir_set_uid(weir_source_datagen(job, "numbers", &opts), "numbers");
    count_fn_t *c = weir_job_alloc(job, sizeof *c);
    c->value_bytes = (uint32_t)value_bytes;
    c->buf = weir_job_alloc(job, (size_t)value_bytes);
    weir_stream_t *counted = weir_process(weir_key_by(src, NULL, NULL), "count", count, c);
    weir_set_uid(counted, "count");
    c->st = weir_value_state(counted, "v");
    weir_sink(weir_rebalance(counted), "slow-sink", slow_sink, s);
    return 0;
}

WEIR_PLUGIN("bpstate", "keyed state of a known size behind a slow sink: " USAGE, define);
