/* Benchmark job "latency": a rate-limited generator -> rebalance -> a pass-through map -> a sink
 * that measures end-to-end latency (bench/latency_bench.py drives it).
 *
 * Each record's value is msgpack [created_us, source_subtask]: created_us is CLOCK_REALTIME in
 * microseconds read by the generator when it makes the record. The sink reads CLOCK_REALTIME
 * again when the record reaches it (another subtask thread, often another task manager process on
 * the same machine: one clock) and counts now - created_us in a log-linear histogram (exact below
 * 128 us, then 64 sub-buckets per power of two: under 1.6 % relative error). At end of input
 * (close FINISHED) the sink writes its histogram to DIR/latency-<subtask>.txt as lines
 * "<bucket lower bound us> <count> <remote count>", where remote counts the records made by a
 * source subtask of another index (with one slot per task manager: records that crossed
 * processes). Files are written whole to a temporary name and renamed.
 *
 * Arguments: --events N (0 = unbounded) --rate R (records/s over all subtasks, 0 = unlimited)
 *            --output DIR (where the sinks write their histograms; required).
 * Threading: the generator and the sink run on their subtasks' threads; each sink subtask owns
 * its own histogram (indexed by subtask, allocated in open, freed in close). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weir/weir.h>

#define SUB_BITS 7u
#define SUB (1u << SUB_BITS)
#define N_BUCKETS (SUB + 64u * SUB)
#define MAX_SUBTASKS 1024u

typedef struct hist {
    uint64_t all[N_BUCKETS];
    uint64_t remote[N_BUCKETS];
} hist_t;

typedef struct job_cfg {
    char *output;
    hist_t *h[MAX_SUBTASKS]; /* one per sink subtask of this process */
} job_cfg_t;

static int64_t realtime_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint32_t bucket_of(uint64_t v) {
    if (v < SUB)
        return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* >= SUB_BITS */
    uint32_t sub = (uint32_t)(v >> (e - SUB_BITS + 1)) & (SUB / 2 - 1);
    return SUB + (e - SUB_BITS) * (SUB / 2) + sub;
}

static uint64_t bucket_low(uint32_t b) {
    if (b < SUB)
        return b;
    uint32_t e = (b - SUB) / (SUB / 2) + SUB_BITS;
    uint64_t sub = (b - SUB) % (SUB / 2);
    return (1ull << e) | (sub << (e - SUB_BITS + 1));
}

static void generate(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, realtime_us());
    msgpack_pack_uint32(pk, weir_subtask_index(ctx));
    weir_emit_packed(ctx, (int64_t)(index & 0x7fffffff), NULL, 0);
}

static void pass(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    weir_emit(ctx, in);
}

static void sink(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    job_cfg_t *c = udata;
    hist_t *h = c->h[weir_subtask_index(ctx) % MAX_SUBTASKS];
    msgpack_object o;
    if (!h || weir_unpack(ctx, in, &o) != 0 || o.type != MSGPACK_OBJECT_ARRAY ||
        o.via.array.size != 2) {
        weir_fail(ctx, "latency sink: expected [created_us, subtask]");
        return;
    }
    int64_t created = o.via.array.ptr[0].via.i64;
    if (o.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        created = (int64_t)o.via.array.ptr[0].via.u64;
    int64_t d = realtime_us() - created;
    uint32_t b = bucket_of(d > 0 ? (uint64_t)d : 0);
    h->all[b]++;
    if (o.via.array.ptr[1].via.u64 != weir_subtask_index(ctx))
        h->remote[b]++;
}

static int sink_open(weir_ctx_t *ctx, void *udata) {
    job_cfg_t *c = udata;
    uint32_t i = weir_subtask_index(ctx);
    if (i >= MAX_SUBTASKS) {
        weir_fail(ctx, "latency sink: at most %u subtasks", MAX_SUBTASKS);
        return 1;
    }
    c->h[i] = calloc(1, sizeof(hist_t));
    return c->h[i] ? 0 : 1;
}

static void sink_close(weir_ctx_t *ctx, weir_close_reason_t why, void *udata) {
    job_cfg_t *c = udata;
    uint32_t i = weir_subtask_index(ctx);
    hist_t *h = c->h[i];
    c->h[i] = NULL;
    if (!h)
        return;
    if (why == WEIR_CLOSE_FINISHED) {
        char path[4096], tmp[4200];
        snprintf(path, sizeof path, "%s/latency-%u.txt", c->output, i);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            weir_fail(ctx, "latency sink: cannot write %s: %s", tmp, strerror(errno));
        } else {
            for (uint32_t b = 0; b < N_BUCKETS; b++)
                if (h->all[b])
                    fprintf(f, "%llu %llu %llu\n", (unsigned long long)bucket_low(b),
                            (unsigned long long)h->all[b], (unsigned long long)h->remote[b]);
            if (fclose(f) != 0 || rename(tmp, path) != 0)
                weir_fail(ctx, "latency sink: cannot write %s: %s", path, strerror(errno));
        }
    }
    free(h);
}

static int define(weir_job_t *job, int argc, char **argv) {
    uint64_t events = 1000000;
    double rate = 0;
    const char *output = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc) {
            events = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = strtod(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--output") && i + 1 < argc) {
            output = argv[++i];
        } else {
            weir_job_error(job, "unknown argument '%s' (usage: --events N --rate R --output DIR)",
                           argv[i]);
            return 1;
        }
    }
    if (!output) {
        weir_job_error(job, "missing --output DIR (where the sinks write their histograms)");
        return 1;
    }
    job_cfg_t *c = weir_job_alloc(job, sizeof *c);
    c->output = weir_job_strdup(job, output);
    weir_stream_t *src =
        weir_set_uid(weir_source_generator(job, "gen", events, rate, generate, NULL), "gen");
    weir_stream_t *m = weir_set_uid(weir_map(weir_rebalance(src), "pass", pass, NULL), "pass");
    weir_stream_t *s = weir_set_uid(weir_sink(m, "latency-sink", sink, c), "latency-sink");
    weir_set_lifecycle(s, sink_open, sink_close);
    return 0;
}

WEIR_PLUGIN("latency", "rate-limited generator -> rebalance -> map -> latency histogram sink",
            define);
