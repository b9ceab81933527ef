/* Example job: streaming word count.
 *
 *   weir run build/examples/wordcount.so --input PATH --output DIR [--rate LINES_PER_SEC]
 *
 * lines (file source) -> split (flat_map: words separated by ASCII whitespace, kept exactly as
 * written) -> key_by(word) -> count (keyed process, value state "count") -> sink (file sink).
 * Every input word updates its count and emits "<word> <count>", so the last line of a word in
 * the output holds its total (a changelog, as in Flink's streaming word count).
 * The split and count functions are in wordcount_fns.c (shared with kafka_wordcount.c).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#include "wordcount_fns.h"

#define USAGE "usage: wordcount.so --input PATH --output DIR [--rate LINES_PER_SEC]"

static int define(weir_job_t *job, int argc, char **argv) {
    const char *input = NULL, *output = NULL;
    double rate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; " USAGE, a);
            return 1;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--input") == 0) {
            input = v;
        } else if (strcmp(a, "--output") == 0) {
            output = v;
        } else if (strcmp(a, "--rate") == 0) {
            char *end;
            errno = 0;
            rate = strtod(v, &end);
            if (errno || *end || end == v || rate < 0) {
                weir_job_error(job, "bad --rate '%s': expected lines per second >= 0; " USAGE, v);
                return 1;
            }
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (!input || !output) {
        weir_job_error(job, "missing %s; " USAGE, !input ? "--input" : "--output");
        return 1;
    }
    wc_count_t *wc = weir_job_alloc(job, sizeof(*wc));
    weir_stream_t *lines = weir_set_uid(weir_source_file(job, "lines", input, rate), "lines");
    weir_stream_t *words = weir_flat_map(lines, "split", wc_split, NULL);
    weir_stream_t *counts = weir_process(weir_key_by(words, NULL, NULL), "count", wc_count, wc);
    weir_set_uid(counts, "count");
    wc->count = weir_value_state(counts, "count");
    weir_set_uid(weir_sink_file(counts, "sink", output), "sink");
    return 0;
}

WEIR_PLUGIN("wordcount", "counts words of text files: --input PATH --output DIR [--rate N]",
            define);
