/* Test plugin for backpressure: an unbounded datagen source -> rebalance -> a sink that consumes
 * at most --sink-rate records per second per subtask (it sleeps). Arguments:
 *   --sink-rate N   records per second per sink subtask (default 2000) */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weir/weir.h>

typedef struct slow {
    long per_sec;
    long n;
} slow_t;

static void slow_sink(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    slow_t *s = udata;
    /* Sleep 10 ms after every per_sec/100 records: at most per_sec records per second. */
    long batch = s->per_sec / 100 > 0 ? s->per_sec / 100 : 1;
    if (++s->n % batch == 0) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int define(weir_job_t *job, int argc, char **argv) {
    slow_t *s = weir_job_alloc(job, sizeof *s);
    s->per_sec = 2000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sink-rate") && i + 1 < argc) {
            s->per_sec = atol(argv[++i]);
        } else {
            weir_job_error(job, "unknown argument '%s' (usage: --sink-rate N)", argv[i]);
            return 1;
        }
    }
    weir_datagen_opts_t opts = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 0};
    weir_stream_t *src = weir_set_uid(weir_source_datagen(job, "datagen", &opts), "datagen");
    weir_sink(weir_rebalance(src), "slow-sink", slow_sink, s);
    return 0;
}

WEIR_PLUGIN("slowsink", "unbounded datagen into a deliberately slow sink", define);
