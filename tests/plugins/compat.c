/* Test plugin for savepoint compatibility (tests/integration/18_savepoint_compat.py): one job in
 * versions that differ the way an upgrade can, chosen with --variant:
 *
 *   base      numbers (generator, uid "numbers") -> key_by -> count (uid "count", value state
 *             "n") -> key_by -> extra (uid "extra", value state "n") -> sink (file, uid "sink")
 *   removed   base without extra (uid 'extra' is gone: its state has no operator)
 *   added     base with one more keyed operator audit (uid "audit", value state "n") after extra
 *   listkind  base, but count's state "n" is a list state (a state kind change)
 *   maxpar    base with maximum parallelism 256 instead of the default 128
 *
 * Arguments: --variant V (default base) --output DIR (required) --count N (numbers 0..N-1,
 * default 10000) --keys K (default 50) --rate R (numbers per second over all subtasks, default
 * 0 = unlimited). Number i has the key i mod K (8 bytes, big-endian). Each keyed operator counts
 * the numbers of each key in its state, forwards them and the lines of upstream operators, and
 * emits "<uid> <key> <n>" per number (n = 1, 2, ...; for listkind, n = the list's length after
 * the add); a filter keeps only the lines for the sink. So the output holds one line per
 * (operator, number) and the counts of each key continue across a restore.
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#define USAGE                                                                                      \
    "usage: compat.so --output DIR [--variant base|removed|added|listkind|maxpar] [--count N] "    \
    "[--keys K] [--rate R]"

typedef struct counter {
    const char *uid;
    weir_state_id st;
    bool list; /* the state is a list state (variant listkind, operator count) */
} counter_t;

typedef struct numbers {
    uint64_t keys;
} numbers_t;

static void gen(weir_ctx_t *ctx, uint64_t index, void *udata) {
    const numbers_t *nb = udata;
    uint64_t k = index % nb->keys;
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(k >> (8 * (7 - i)));
    msgpack_pack_uint64(weir_packer(ctx), index);
    weir_emit_packed(ctx, 0, key, sizeof key);
}

static int count_list(const void *val, uint32_t len, void *arg) {
    (void)val;
    (void)len;
    (*(uint64_t *)arg)++;
    return 0;
}

static void count(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const counter_t *c = udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) != 0)
        return;
    if (o.type == MSGPACK_OBJECT_STR) {
        weir_emit(ctx, in); /* an upstream operator's line: forwarded as is */
        return;
    }
    uint32_t klen;
    const uint8_t *key = weir_current_key(ctx, &klen);
    if (!key || klen != 8) {
        weir_fail(ctx, "%s: expected an 8-byte key", c->uid);
        return;
    }
    uint64_t k = 0, n = 0;
    for (uint32_t i = 0; i < 8; i++)
        k = (k << 8) | key[i];
    int rc;
    if (c->list) {
        uint8_t one = 1;
        rc = weir_list_add(ctx, c->st, &one, 1);
        if (rc == 0)
            rc = weir_list_foreach(ctx, c->st, count_list, &n);
    } else {
        const void *val;
        uint32_t len;
        rc = weir_value_get(ctx, c->st, &val, &len);
        if (rc == 0 && len == sizeof n)
            memcpy(&n, val, sizeof n);
        if (rc >= 0) {
            n++;
            rc = weir_value_put(ctx, c->st, &n, sizeof n);
        }
    }
    if (rc < 0) {
        weir_fail(ctx, "%s: state error %d", c->uid, rc);
        return;
    }
    weir_emit(ctx, in); /* the number goes on to the next keyed operator */
    char line[96];
    int len = snprintf(line, sizeof line, "%s %llu %llu", c->uid, (unsigned long long)k,
                       (unsigned long long)n);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, (size_t)len);
    msgpack_pack_str_body(pk, line, (size_t)len);
    weir_emit_packed(ctx, in->timestamp, key, klen);
}

static bool lines_only(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    return weir_unpack(ctx, in, &o) == 0 && o.type == MSGPACK_OBJECT_STR;
}

static weir_stream_t *counter(weir_job_t *job, weir_stream_t *in, const char *uid, bool list) {
    counter_t *c = weir_job_alloc(job, sizeof *c);
    c->uid = uid;
    c->list = list;
    weir_stream_t *s = weir_process(weir_key_by(in, NULL, NULL), uid, count, c);
    weir_set_uid(s, uid);
    c->st = list ? weir_list_state(s, "n") : weir_value_state(s, "n");
    return s;
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *variant = "base", *output = NULL;
    uint64_t n = 10000, keys = 50;
    double rate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            weir_job_error(job, "missing value for '%s'; " USAGE, a);
            return 1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--variant")) {
            variant = v;
        } else if (!strcmp(a, "--output")) {
            output = v;
        } else if (!strcmp(a, "--count")) {
            n = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--keys")) {
            keys = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--rate")) {
            rate = strtod(v, NULL);
        } else {
            weir_job_error(job, "unknown argument '%s'; " USAGE, a);
            return 1;
        }
    }
    bool base = !strcmp(variant, "base"), removed = !strcmp(variant, "removed"),
         added = !strcmp(variant, "added"), listkind = !strcmp(variant, "listkind"),
         maxpar = !strcmp(variant, "maxpar");
    if (!(base || removed || added || listkind || maxpar) || !output || keys == 0) {
        weir_job_error(job, "%s; " USAGE,
                       !output     ? "missing --output"
                       : keys == 0 ? "--keys must be >= 1"
                                   : "unknown --variant");
        return 1;
    }
    if (maxpar)
        weir_job_set_max_parallelism(job, 256);
    numbers_t *nb = weir_job_alloc(job, sizeof *nb);
    nb->keys = keys;
    weir_stream_t *s =
        weir_set_uid(weir_source_generator(job, "numbers", n, rate, gen, nb), "numbers");
    s = counter(job, s, "count", listkind);
    if (!removed)
        s = counter(job, s, "extra", false);
    if (added)
        s = counter(job, s, "audit", false);
    s = weir_filter(s, "lines-only", lines_only, NULL);
    weir_set_uid(weir_sink_file(s, "sink", output), "sink");
    return 0;
}

WEIR_PLUGIN("compat", "savepoint compatibility test job in variants: " USAGE, define);
