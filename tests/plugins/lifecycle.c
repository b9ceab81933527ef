/* Test plugin for the function lifecycle (tests/integration/23_lifecycle.py): a generator source
 * -> map (chained) -> rebalance -> sink, each with open/close callbacks that append one line per
 * call to the file named by --log, which they find through weir_job_args():
 *   "<operator> <subtask> <attempt> open"
 *   "<operator> <subtask> <attempt> close FINISHED|FAILED|CANCELED"
 * Each line is one write() on an O_APPEND descriptor, so the lines of concurrent subtasks and task
 * managers never interleave. Arguments:
 *   --log FILE   (required)
 *   --count N    generator events, 0 = unbounded (default 1000)
 *   --rate R     events per second over all subtasks, 0 = as fast as possible (default 0) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weir/weir.h>

typedef struct lc_op {
    const char *name;
} lc_op_t;

/* The --log argument, read at run time from the job arguments. */
static const char *log_path(weir_ctx_t *ctx) {
    int argc = 0;
    const char *const *argv = weir_job_args(ctx, &argc);
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--log"))
            return argv[i + 1];
    return NULL;
}

static int append(weir_ctx_t *ctx, const char *op, const char *what) {
    const char *path = log_path(ctx);
    if (!path) {
        weir_fail(ctx, "no --log FILE among the job arguments");
        return -1;
    }
    char line[256];
    int n = snprintf(line, sizeof line, "%s %u %u %s\n", op, weir_subtask_index(ctx),
                     weir_attempt_number(ctx), what);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) {
        weir_fail(ctx, "cannot open %s", path);
        return -1;
    }
    ssize_t w = write(fd, line, (size_t)n);
    close(fd);
    return w == n ? 0 : -1;
}

static int lc_open(weir_ctx_t *ctx, void *udata) {
    return append(ctx, ((lc_op_t *)udata)->name, "open");
}

static void lc_close(weir_ctx_t *ctx, weir_close_reason_t why, void *udata) {
    static const char *const names[] = {"close FINISHED", "close FAILED", "close CANCELED"};
    append(ctx, ((lc_op_t *)udata)->name, (unsigned)why < 3 ? names[why] : "close ?");
}

static void gen(weir_ctx_t *ctx, uint64_t index, void *udata) {
    (void)udata;
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, (int64_t)index, NULL, 0);
}

static void pass(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    weir_emit(ctx, in);
}

static void consume(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx;
    (void)in;
    (void)udata;
}

static lc_op_t *op(weir_job_t *job, const char *name) {
    lc_op_t *o = weir_job_alloc(job, sizeof *o);
    o->name = name;
    return o;
}

static int define(weir_job_t *job, int argc, char **argv) {
    uint64_t count = 1000;
    double rate = 0;
    bool have_log = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--log") && i + 1 < argc) {
            have_log = true;
            i++;
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = atof(argv[++i]);
        } else {
            weir_job_error(job, "unknown argument '%s' (usage: --log FILE [--count N] [--rate R])",
                           argv[i]);
            return 1;
        }
    }
    if (!have_log) {
        weir_job_error(job, "no --log FILE: pass the file the callbacks append to");
        return 1;
    }
    lc_op_t *g = op(job, "gen"), *m = op(job, "map"), *k = op(job, "sink");
    weir_stream_t *s = weir_set_uid(weir_source_generator(job, "gen", count, rate, gen, g), "gen");
    weir_set_lifecycle(s, lc_open, lc_close);
    s = weir_set_lifecycle(weir_map(s, "map", pass, m), lc_open, lc_close);
    weir_set_lifecycle(weir_sink(weir_rebalance(s), "sink", consume, k), lc_open, lc_close);
    return 0;
}

WEIR_PLUGIN("lifecycle", "open/close callbacks that log every call (tests)", define);
