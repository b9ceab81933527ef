/* Benchmark job "keyed count": datagen of random keys -> key_by -> a running count per key in
 * keyed ValueState -> blackhole. Measures the keyed-state path (write-back cache + RocksDB).
 * Arguments: --events N (default 5,000,000) --keys K (default 100,000) --rate R (records/s over
 * all subtasks, default unlimited). */
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

static void count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    weir_state_id st = *(const weir_state_id *)udata;
    const void *val;
    uint32_t len;
    uint64_t n = 0;
    if (weir_value_get(ctx, st, &val, &len) == 0 && len == sizeof n)
        memcpy(&n, val, sizeof n);
    n++;
    weir_value_put(ctx, st, &n, sizeof n);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_uint64(pk, n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    uint64_t events = 5000000, keys = 100000;
    double rate = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc) {
            events = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            keys = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = strtod(argv[++i], NULL);
        } else {
            weir_job_error(job, "unknown argument '%s' (usage: --events N --keys K --rate R)",
                           argv[i]);
            return 1;
        }
    }
    weir_datagen_opts_t opts = {
        .kind = WEIR_DATAGEN_RANDOM, .count = events, .random_max = keys, .seed = 7, .rate = rate};
    weir_stream_t *src = weir_set_uid(weir_source_datagen(job, "datagen", &opts), "datagen");
    weir_state_id *st = weir_job_alloc(job, sizeof *st);
    weir_stream_t *counted = weir_process(weir_key_by(src, NULL, NULL), "count", count, st);
    weir_set_uid(counted, "count");
    *st = weir_value_state(counted, "count");
    weir_sink_blackhole(counted, "blackhole");
    return 0;
}

WEIR_PLUGIN("keyedcount", "random keys -> keyed running count in ValueState -> blackhole", define);
