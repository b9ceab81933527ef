/* Example job: streaming word count.
 *
 *   weir run build/examples/wordcount.so --input PATH --output DIR [--rate LINES_PER_SEC]
 *
 * lines (file source) -> split (flat_map: words separated by ASCII whitespace, kept exactly as
 * written) -> key_by(word) -> count (keyed process, value state "count") -> sink (file sink).
 * Every input word updates its count and emits "<word> <count>", so the last line of a word in
 * the output holds its total (a changelog, as in Flink's streaming word count).
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <weir/weir.h>

#define USAGE "usage: wordcount.so --input PATH --output DIR [--rate LINES_PER_SEC]"

typedef struct wc_count {
    weir_state_id count;
} wc_count_t;

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void split_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (weir_unpack(ctx, in, &obj) != 0)
        return;
    if (obj.type != MSGPACK_OBJECT_STR) {
        weir_fail(ctx, "split: expected a string line, got msgpack type %d", (int)obj.type);
        return;
    }
    const char *s = obj.via.str.ptr;
    uint32_t n = obj.via.str.size;
    uint32_t i = 0;
    while (i < n) {
        while (i < n && is_space(s[i]))
            i++;
        uint32_t b = i;
        while (i < n && !is_space(s[i]))
            i++;
        if (i == b)
            break;
        uint32_t len = i - b;
        msgpack_packer *pk = weir_packer(ctx);
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, s + b, len);
        /* Keys are capped at WEIR_MAX_KEY_LEN bytes; longer words share a key by prefix. */
        weir_emit_packed(ctx, in->timestamp, s + b,
                         len < WEIR_MAX_KEY_LEN ? len : WEIR_MAX_KEY_LEN);
    }
}

static void count_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    wc_count_t *wc = udata;
    msgpack_object obj;
    if (weir_unpack(ctx, in, &obj) != 0)
        return;
    if (obj.type != MSGPACK_OBJECT_STR) {
        weir_fail(ctx, "count: expected a string word, got msgpack type %d", (int)obj.type);
        return;
    }
    const void *val;
    uint32_t len;
    uint64_t count = 0;
    int rc = weir_value_get(ctx, wc->count, &val, &len);
    if (rc < 0) {
        weir_fail(ctx, "count: cannot read state 'count' (error %d)", rc);
        return;
    }
    if (rc == 0 && len == 8) {
        const uint8_t *b = val;
        for (int i = 7; i >= 0; i--)
            count = (count << 8) | b[i];
    }
    count++;
    uint8_t enc[8];
    for (int i = 0; i < 8; i++)
        enc[i] = (uint8_t)(count >> (8 * i)); /* little-endian */
    rc = weir_value_put(ctx, wc->count, enc, sizeof(enc));
    if (rc < 0) {
        weir_fail(ctx, "count: cannot write state 'count' (error %d)", rc);
        return;
    }
    char digits[24];
    int d = snprintf(digits, sizeof(digits), " %llu", (unsigned long long)count);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, obj.via.str.size + (size_t)d);
    msgpack_pack_str_body(pk, obj.via.str.ptr, obj.via.str.size);
    msgpack_pack_str_body(pk, digits, (size_t)d);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

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
    weir_stream_t *lines = weir_source_file(job, "lines", input, rate);
    weir_stream_t *words = weir_flat_map(lines, "split", split_fn, NULL);
    weir_stream_t *counts = weir_process(weir_key_by(words, NULL, NULL), "count", count_fn, wc);
    weir_set_uid(counts, "count");
    wc->count = weir_value_state(counts, "count");
    weir_sink_file(counts, "sink", output);
    return 0;
}

WEIR_PLUGIN("wordcount", "counts words of text files: --input PATH --output DIR [--rate N]",
            define);
