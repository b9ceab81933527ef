/* Example job: streaming word count from Kafka to Kafka (docs/kafka.md).
 *
 *   weir run build/examples/kafka_wordcount.so --brokers B --input-topic T
 *       (--output-topic U [--delivery exactly-once|at-least-once|none] | --output-dir DIR)
 *       [--bounded] [--group G] [--rate LINES_PER_SEC]
 *
 * lines (Kafka source: the values of topic T as UTF-8 strings, read_committed) -> split (flat_map:
 * words separated by ASCII whitespace, kept exactly as written) -> key_by(word) -> count (keyed
 * process, value state "count") -> sink: topic U (Kafka sink, delivery per --delivery, default
 * exactly-once; key the word, value "<word> <count>" as a UTF-8 string) or, with --output-dir,
 * the exactly-once file sink into DIR (one line "<word> <count>" per update).
 * Every input word updates its count and emits one record, so the last record of a word holds its
 * total (a changelog). --bounded reads up to the end offsets of the start, then the job finishes;
 * --group commits the source's offsets to consumer group G on every checkpoint (monitoring);
 * --rate limits each source subtask to that many lines per second.
 * The split and count functions are wordcount.c's (wordcount_fns.c).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#include "wordcount_fns.h"

#define USAGE                                                                                      \
    "usage: kafka_wordcount.so --brokers B --input-topic T (--output-topic U [--delivery "         \
    "exactly-once|at-least-once|none] [--transaction-timeout-ms MS] | --output-dir DIR) "          \
    "[--bounded] [--group G] [--rate LINES_PER_SEC]"

static int define(weir_job_t *job, int argc, char **argv) {
    const char *brokers = NULL, *input = NULL, *output_topic = NULL, *output_dir = NULL;
    const char *delivery = NULL, *group = NULL, *rate = NULL, *txn_timeout = NULL;
    bool bounded = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--bounded") == 0) {
            bounded = true;
            continue;
        }
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; " USAGE, a);
            return 1;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--brokers") == 0) {
            brokers = v;
        } else if (strcmp(a, "--input-topic") == 0) {
            input = v;
        } else if (strcmp(a, "--output-topic") == 0) {
            output_topic = v;
        } else if (strcmp(a, "--output-dir") == 0) {
            output_dir = v;
        } else if (strcmp(a, "--delivery") == 0) {
            if (strcmp(v, "exactly-once") != 0 && strcmp(v, "at-least-once") != 0 &&
                strcmp(v, "none") != 0) {
                weir_job_error(
                    job, "bad --delivery '%s': use exactly-once, at-least-once or none; " USAGE, v);
                return 1;
            }
            delivery = v;
        } else if (strcmp(a, "--group") == 0) {
            group = v;
        } else if (strcmp(a, "--transaction-timeout-ms") == 0) {
            txn_timeout = v; /* the sink checks it; the job manager checks it is long enough */
        } else if (strcmp(a, "--rate") == 0) {
            char *end;
            errno = 0;
            long long r = strtoll(v, &end, 10);
            if (errno || *end || end == v || r < 0) {
                weir_job_error(job, "bad --rate '%s': expected whole lines per second >= 0; " USAGE,
                               v);
                return 1;
            }
            rate = v;
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    if (!brokers || !input || (!output_topic == !output_dir)) {
        weir_job_error(job, "%s; " USAGE,
                       !brokers       ? "missing --brokers"
                       : !input       ? "missing --input-topic"
                       : output_topic ? "give --output-topic or --output-dir, not both"
                                      : "missing --output-topic (or --output-dir)");
        return 1;
    }
    if (delivery && output_dir) {
        weir_job_error(job, "--delivery applies to --output-topic (the file sink of --output-dir "
                            "is always exactly-once); " USAGE);
        return 1;
    }

    const char *src_opts[32];
    int k = 0;
    src_opts[k++] = "bootstrap.servers";
    src_opts[k++] = brokers;
    src_opts[k++] = "topic";
    src_opts[k++] = input;
    src_opts[k++] = "value.format";
    src_opts[k++] = "string";
    if (bounded) {
        src_opts[k++] = "scan.bounded.mode";
        src_opts[k++] = "latest-offset";
    }
    if (group) {
        src_opts[k++] = "group.id";
        src_opts[k++] = group;
    }
    if (rate) {
        src_opts[k++] = "scan.rate-limit";
        src_opts[k++] = rate;
    }
    src_opts[k] = NULL;

    wc_count_t *wc = weir_job_alloc(job, sizeof(*wc));
    weir_stream_t *lines = weir_set_uid(weir_source_kafka(job, "lines", src_opts), "lines");
    weir_stream_t *words = weir_flat_map(lines, "split", wc_split, NULL);
    weir_stream_t *counts = weir_process(weir_key_by(words, NULL, NULL), "count", wc_count, wc);
    weir_set_uid(counts, "count");
    wc->count = weir_value_state(counts, "count");
    if (output_dir) {
        weir_set_uid(weir_sink_file(counts, "sink", output_dir), "sink");
        return 0;
    }
    const char *sink_opts[] = {"bootstrap.servers",
                               brokers,
                               "topic",
                               output_topic,
                               "sink.delivery-guarantee",
                               delivery ? delivery : "exactly-once",
                               "key.format",
                               "raw",
                               "value.format",
                               "string",
                               txn_timeout ? "transaction.timeout.ms" : NULL,
                               txn_timeout,
                               NULL};
    weir_set_uid(weir_sink_kafka(counts, "sink", sink_opts), "sink");
    return 0;
}

WEIR_PLUGIN("kafka_wordcount",
            "counts words of a Kafka topic: --brokers B --input-topic T (--output-topic U "
            "[--delivery exactly-once|at-least-once|none] | --output-dir DIR) [--bounded] "
            "[--group G] [--rate N]",
            define);
