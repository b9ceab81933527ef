/* Test plugin for state time to live end to end (tests/integration/30_ttl.py): a keyed process
 * function writes value, list, map and reducing state with a time to live, reads it back later
 * and emits exactly what it read, so the test can check that expired state is never returned.
 *
 *   events (generator, --rate R records/s, uid "events"; run at -p 1 so that "--rate" is the
 *   whole stream's) -> key_by (record key) ->
 *   ttl (weir_process, uid "ttl"; states "v" value, "l" list, "m" map, "r" reducing (sum of
 *   msgpack integers), all with time to live --ttl MS (ON_CREATE_AND_WRITE), and "born" (value,
 *   no time to live: the processing time of the write)) -> exactly-once file sink --output
 *   (uid "out")
 *
 * Event index i, with K = --keys and G = --gap-ms * R / 1000 records:
 *   [0, K)            write key "k<j>", j = i: v = P(j,0); l += P(j,1), P(j,2); m["a"] = P(j,3),
 *                     m["b"] = P(j,4); r += j+1 twice; born = now; then reads it all back and
 *                     emits "W <line>"
 *   [K, 2K)           reads key "k<j>", j = i-K, emits "E <line>" (about K/R s after the write)
 *   [2K, 2K+G)        key "tick": no state access, nothing emitted (time passes: the state
 *                     written above expires and the background cleanup removes it)
 *   [2K+G, 3K+G)      reads key "k<j>", j = i-2K-G, emits "L <line> again=<v>" where v is what
 *                     "v" reads after writing "again" into it (a write after the expiry works)
 * <line> = "k<j> <age> v=<v> l=<e1>,<e2> m=a:<x>,b:<y> r=<sum>": age = now - born (ms of
 * weir_current_processing_time; -1 without born), "-" for an absent value / empty list / map.
 * P(j,s): --payload N lowercase letters from x = j*1000003 + s*7919 + 1, per letter
 * x = x*6364136223846793005 + 1442695040888963407 (mod 2^64), letter 'a' + (x >> 33) mod 26.
 * Threading: define() runs once per subtask; its configuration is read-only afterwards. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weir/weir.h>

#include "plugin_args.h"

#define USAGE                                                                                      \
    "usage: ttl.so --output DIR [--keys N] [--ttl MS] [--gap-ms MS] [--rate R] [--payload N]"
#define MAX_PAYLOAD 1000
#define LINE_CAP (8 * MAX_PAYLOAD + 256)

typedef struct conf {
    uint64_t keys, gap;
    uint64_t payload;
    weir_state_id v, l, m, r, born;
} conf_t;

/* A growing output line (bounded by LINE_CAP: the payload is at most MAX_PAYLOAD). */
typedef struct line {
    char buf[LINE_CAP];
    size_t n;
} line_t;

static void put(line_t *ln, const char *s, size_t n) {
    if (n > LINE_CAP - 1 - ln->n)
        n = LINE_CAP - 1 - ln->n;
    memcpy(ln->buf + ln->n, s, n);
    ln->n += n;
    ln->buf[ln->n] = '\0';
}

static void puts_(line_t *ln, const char *s) {
    put(ln, s, strlen(s));
}

static void payload(const conf_t *c, uint64_t j, uint64_t slot, char *out) {
    uint64_t x = j * 1000003u + slot * 7919u + 1u;
    for (uint64_t k = 0; k < c->payload; k++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        out[k] = (char)('a' + (x >> 33) % 26);
    }
}

static void gen(weir_ctx_t *ctx, uint64_t i, void *udata) {
    const conf_t *c = udata;
    char key[32];
    int n;
    if (i < 2 * c->keys)
        n = snprintf(key, sizeof key, "k%llu", (unsigned long long)(i % c->keys));
    else if (i < 2 * c->keys + c->gap)
        n = snprintf(key, sizeof key, "tick");
    else
        n = snprintf(key, sizeof key, "k%llu", (unsigned long long)(i - 2 * c->keys - c->gap));
    msgpack_pack_uint64(weir_packer(ctx), i);
    weir_emit_packed(ctx, 0, key, (uint32_t)n);
}

static int list_elem(const void *val, uint32_t len, void *arg) {
    line_t *ln = arg;
    if (ln->buf[ln->n - 1] != '=')
        puts_(ln, ",");
    put(ln, val, len);
    return 0;
}

static int map_entry(const void *uk, uint32_t ukl, const void *val, uint32_t len, void *arg) {
    line_t *ln = arg;
    if (ln->buf[ln->n - 1] != '=')
        puts_(ln, ",");
    put(ln, uk, ukl);
    puts_(ln, ":");
    put(ln, val, len);
    return 0;
}

static int64_t read_born(weir_ctx_t *ctx, const conf_t *c) {
    const void *b;
    uint32_t bl;
    int64_t born;
    if (weir_value_get(ctx, c->born, &b, &bl) != 0 || bl != sizeof born)
        return INT64_MIN;
    memcpy(&born, b, sizeof born);
    return born;
}

/* Reads every state of the current key into @p ln (after "<tag> <key> "); 0 or -1 on failure. */
static int read_all(weir_ctx_t *ctx, const conf_t *c, line_t *ln) {
    int64_t born = read_born(ctx, c);
    char num[64];
    snprintf(num, sizeof num, " %lld v=",
             born == INT64_MIN ? -1LL : (long long)(weir_current_processing_time(ctx) - born));
    puts_(ln, num);
    const void *v;
    uint32_t vl;
    int rc = weir_value_get(ctx, c->v, &v, &vl);
    if (rc < 0)
        return -1;
    if (rc == 0)
        put(ln, v, vl);
    else
        puts_(ln, "-");
    puts_(ln, " l=");
    size_t mark = ln->n;
    if (weir_list_foreach(ctx, c->l, list_elem, ln) < 0)
        return -1;
    if (ln->n == mark)
        puts_(ln, "-");
    puts_(ln, " m=");
    mark = ln->n;
    if (weir_mapstate_foreach(ctx, c->m, map_entry, ln) < 0)
        return -1;
    if (ln->n == mark)
        puts_(ln, "-");
    puts_(ln, " r=");
    rc = weir_reducing_get(ctx, c->r, &v, &vl);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, v, vl, NULL) != MSGPACK_UNPACK_SUCCESS) {
            msgpack_unpacked_destroy(&u);
            return -1;
        }
        snprintf(num, sizeof num, "%lld",
                 u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (long long)u.data.via.u64
                                                                : (long long)u.data.via.i64);
        msgpack_unpacked_destroy(&u);
        puts_(ln, num);
    } else {
        puts_(ln, "-");
    }
    return 0;
}

static int write_all(weir_ctx_t *ctx, const conf_t *c, uint64_t j) {
    char p[MAX_PAYLOAD];
    int rc = 0;
    payload(c, j, 0, p);
    rc |= weir_value_put(ctx, c->v, p, (uint32_t)c->payload);
    payload(c, j, 1, p);
    rc |= weir_list_add(ctx, c->l, p, (uint32_t)c->payload);
    payload(c, j, 2, p);
    rc |= weir_list_add(ctx, c->l, p, (uint32_t)c->payload);
    payload(c, j, 3, p);
    rc |= weir_mapstate_put(ctx, c->m, "a", 1, p, (uint32_t)c->payload);
    payload(c, j, 4, p);
    rc |= weir_mapstate_put(ctx, c->m, "b", 1, p, (uint32_t)c->payload);
    unsigned char mp[9]; /* msgpack uint64: 0xcf + 8 bytes big-endian */
    mp[0] = 0xcf;
    for (int k = 0; k < 8; k++)
        mp[1 + k] = (unsigned char)((j + 1) >> (56 - 8 * k));
    rc |= weir_reducing_add(ctx, c->r, mp, 9);
    rc |= weir_reducing_add(ctx, c->r, mp, 9);
    int64_t now = weir_current_processing_time(ctx);
    rc |= weir_value_put(ctx, c->born, &now, sizeof now);
    return rc ? -1 : 0;
}

static void process(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const conf_t *c = udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) < 0)
        return;
    uint64_t i = o.via.u64;
    if (i >= 2 * c->keys && i < 2 * c->keys + c->gap)
        return; /* tick */
    line_t *ln = malloc(sizeof *ln);
    if (!ln) {
        weir_fail(ctx, "ttl: out of memory");
        return;
    }
    ln->n = 0;
    ln->buf[0] = '\0';
    const char *tag = i < c->keys ? "W " : i < 2 * c->keys ? "E " : "L ";
    puts_(ln, tag);
    put(ln, in->key, in->key_len);
    if (i < c->keys && write_all(ctx, c, i) < 0) {
        weir_fail(ctx, "ttl: a state write failed");
        free(ln);
        return;
    }
    if (read_all(ctx, c, ln) < 0) {
        weir_fail(ctx, "ttl: a state read failed");
        free(ln);
        return;
    }
    if (i >= 2 * c->keys) {
        const void *v;
        uint32_t vl;
        if (weir_value_put(ctx, c->v, "again", 5) < 0 || weir_value_get(ctx, c->v, &v, &vl) < 0) {
            weir_fail(ctx, "ttl: writing after the expiry failed");
            free(ln);
            return;
        }
        puts_(ln, " again=");
        put(ln, v, vl);
    }
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, ln->n);
    msgpack_pack_str_body(pk, ln->buf, ln->n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
    free(ln);
}

static void sum(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                void *udata) {
    (void)udata;
    msgpack_pack_uint64(out, acc->via.u64 + in->via.u64);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *out = NULL;
    uint64_t keys = 2000, payload_n = 200;
    int64_t ttl = 3000, gap_ms = 9000;
    double rate = 2000;
    const plugin_arg_t args[] = {{"--output", PLUGIN_ARG_STR, &out},
                                 {"--keys", PLUGIN_ARG_U64, &keys},
                                 {"--ttl", PLUGIN_ARG_I64, &ttl},
                                 {"--gap-ms", PLUGIN_ARG_I64, &gap_ms},
                                 {"--rate", PLUGIN_ARG_DOUBLE, &rate},
                                 {"--payload", PLUGIN_ARG_U64, &payload_n},
                                 {NULL, 0, NULL}};
    if (plugin_args_parse(job, argc, argv, args, USAGE))
        return 1;
    if (!out) {
        weir_job_error(job, "--output is required; " USAGE);
        return 1;
    }
    if (!keys || payload_n < 1 || payload_n > MAX_PAYLOAD || ttl <= 0 || gap_ms < 0 || rate <= 0) {
        weir_job_error(job, "--keys, --ttl and --rate must be positive, --gap-ms at least 0 and "
                            "--payload 1 to 1000; " USAGE);
        return 1;
    }
    conf_t *c = weir_job_alloc(job, sizeof *c);
    c->keys = keys;
    c->payload = payload_n;
    c->gap = (uint64_t)((double)gap_ms * rate / 1000.0);
    weir_stream_t *src = weir_source_generator(job, "events", 3 * keys + c->gap, rate, gen, c);
    weir_set_uid(src, "events");
    weir_stream_t *p = weir_process(weir_key_by(src, NULL, NULL), "ttl", process, c);
    weir_set_uid(p, "ttl");
    c->v = weir_value_state(p, "v");
    c->l = weir_list_state(p, "l");
    c->m = weir_map_state(p, "m");
    c->r = weir_reducing_state(p, "r", sum, NULL);
    c->born = weir_value_state(p, "born");
    if (c->v < 0 || c->l < 0 || c->m < 0 || c->r < 0 || c->born < 0)
        return 1;
    weir_state_id with_ttl[] = {c->v, c->l, c->m, c->r};
    for (size_t k = 0; k < sizeof with_ttl / sizeof *with_ttl; k++)
        if (weir_state_set_ttl(p, with_ttl[k], ttl, WEIR_TTL_ON_CREATE_AND_WRITE) < 0)
            return 1;
    weir_set_uid(weir_sink_file(p, "out", out), "out");
    return 0;
}

WEIR_PLUGIN("ttl", "keyed state with a time to live, read back before and after it expires: " USAGE,
            define);
