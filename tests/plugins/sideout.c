/* Test plugin for side outputs (tests/integration/26_side_outputs.py): word count whose long
 * words also go to a side output.
 *
 *   lines (file source --input PATH at --rate R lines/s, uid "lines") -> split (the examples'
 *   wc_split: one record per word) -> route (flat_map: every word to the main output, a word of
 *   more than --min-long N bytes (default 7) also to side output "long") -> main: key_by (the word)
 *   -> count (the examples' wc_count: "<word> <n>", uid "count") -> exactly-once file sink
 *   (--output DIR, uid "out"); side "long": forward -> exactly-once file sink (--long DIR, uid
 *   "long"): one line per occurrence of a long word. The long sink is chained (lines -> split ->
 *   route -> long): the main output leaves the chain from route, inside it.
 *
 * The split and count functions are the examples' (examples/wordcount_fns.c, linked in by
 * tests/CMakeLists.txt). Threading: define() runs once per subtask; the functions keep no state
 * besides the count's keyed state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#include "wordcount_fns.h"

#define USAGE "usage: sideout.so --input PATH --output DIR --long DIR [--rate R] [--min-long N]"

typedef struct route_cfg {
    uint32_t min_long; /* words of more bytes than this go to the side output too */
    int tag;           /* the side output "long" */
} route_cfg_t;

static void route(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const route_cfg_t *cfg = udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) != 0)
        return;
    weir_emit(ctx, in);
    if (o.type == MSGPACK_OBJECT_STR && o.via.str.size > cfg->min_long)
        weir_emit_to(ctx, cfg->tag, in);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *input = NULL, *output = NULL, *longdir = NULL;
    double rate = 0;
    long min_long = 7;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; " USAGE, argv[i]);
            return 1;
        }
        const char *a = argv[i], *v = argv[++i];
        char *end;
        errno = 0;
        if (strcmp(a, "--input") == 0) {
            input = v;
        } else if (strcmp(a, "--output") == 0) {
            output = v;
        } else if (strcmp(a, "--long") == 0) {
            longdir = v;
        } else if (strcmp(a, "--rate") == 0) {
            rate = strtod(v, &end);
            if (errno || *end || end == v || rate < 0) {
                weir_job_error(job, "bad --rate '%s': expected lines per second >= 0; " USAGE, v);
                return 1;
            }
        } else if (strcmp(a, "--min-long") == 0) {
            min_long = strtol(v, &end, 10);
            if (errno || *end || end == v || min_long < 0 || min_long > 1000) {
                weir_job_error(job, "bad --min-long '%s': expected 0..1000 bytes; " USAGE, v);
                return 1;
            }
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (!input || !output || !longdir) {
        weir_job_error(job, "missing %s; " USAGE,
                       !input    ? "--input"
                       : !output ? "--output"
                                 : "--long");
        return 1;
    }
    route_cfg_t *cfg = weir_job_alloc(job, sizeof(*cfg));
    cfg->min_long = (uint32_t)min_long;
    wc_count_t *wc = weir_job_alloc(job, sizeof(*wc));
    weir_stream_t *lines = weir_set_uid(weir_source_file(job, "lines", input, rate), "lines");
    weir_stream_t *words = weir_flat_map(lines, "split", wc_split, NULL);
    weir_stream_t *routed = weir_flat_map(words, "route", route, cfg);
    cfg->tag = weir_side_output_tag(routed, "long");
    weir_stream_t *counts = weir_process(weir_key_by(routed, NULL, NULL), "count", wc_count, wc);
    weir_set_uid(counts, "count");
    wc->count = weir_value_state(counts, "count");
    weir_set_uid(weir_sink_file(counts, "out", output), "out");
    weir_set_uid(weir_sink_file(weir_side_output(routed, cfg->tag), "long", longdir), "long");
    return 0;
}

WEIR_PLUGIN("sideout", "word count with long words to a side output: " USAGE, define);
