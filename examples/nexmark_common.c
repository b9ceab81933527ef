/* Pieces the Nexmark queries share (nexmark_queries.h): the bounded JSON line writer, event
 * unpacking, the `events` JSON mapping, the select (with the late split of the windowed queries)
 * in front of every query, the
 * output sink, the count aggregate.
 * Invariant: a record the late split (a select with first_end) lets through has first_end(ts) - 1 +
 * lateness above the split's watermark, which is at least the watermark of any operator downstream
 * of it when the record gets there (watermarks travel in band behind the records), so no window
 * downstream has emitted a result the record could change. Threading: functions run on the subtask
 * thread; the late split's udata is read-only. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nexmark_gen.h"
#include "nexmark_queries.h"

static void jb_raw(nexmark_json_t *j, const char *s, size_t n) {
    if (j->n + n > sizeof(j->b)) {
        j->overflow = true;
        return;
    }
    memcpy(j->b + j->n, s, n);
    j->n += n;
}

static void jb_printf(nexmark_json_t *j, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        j->overflow = true;
        return;
    }
    jb_raw(j, tmp, (size_t)n);
}

void nexmark_json_begin(nexmark_json_t *j) {
    j->n = 0;
    j->overflow = false;
    jb_raw(j, "{", 1);
}

static void jb_key(nexmark_json_t *j, const char *key) {
    if (j->n > 1)
        jb_raw(j, ",", 1);
    jb_raw(j, "\"", 1);
    jb_raw(j, key, strlen(key));
    jb_raw(j, "\":", 2);
}

/* Decimal digits of @p v, with a '-' first when @p neg (no printf: this runs for every column). */
static void jb_u64(nexmark_json_t *j, uint64_t v, bool neg) {
    char tmp[21];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        tmp[--i] = '-';
    jb_raw(j, tmp + i, sizeof(tmp) - i);
}

static void jb_i64(nexmark_json_t *j, int64_t v) {
    jb_u64(j, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

void nexmark_json_int(nexmark_json_t *j, const char *key, int64_t v) {
    jb_key(j, key);
    jb_i64(j, v);
}

void nexmark_json_member(nexmark_json_t *j, const char *key, const msgpack_object *v) {
    jb_key(j, key);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        jb_u64(j, v->via.u64, false);
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        jb_i64(j, v->via.i64);
    } else if (v->type == MSGPACK_OBJECT_STR) {
        /* runs of characters that need no escape are copied whole */
        const char *s = v->via.str.ptr;
        uint32_t n = v->via.str.size, run = 0;
        jb_raw(j, "\"", 1);
        for (uint32_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch != '"' && ch != '\\' && ch >= 0x20)
                continue;
            jb_raw(j, s + run, i - run);
            run = i + 1;
            if (ch == '"' || ch == '\\')
                jb_printf(j, "\\%c", ch);
            else
                jb_printf(j, "\\u%04x", ch);
        }
        jb_raw(j, s + run, n - run);
        jb_raw(j, "\"", 1);
    } else {
        j->overflow = true; /* not an event field */
    }
}

bool nexmark_json_emit(nexmark_json_t *j, weir_ctx_t *ctx, int64_t ts, const char *what) {
    jb_raw(j, "}", 1);
    if (j->overflow) {
        weir_fail(ctx, "%s: a result does not fit the %zu-byte JSON line buffer", what,
                  sizeof(j->b));
        return false;
    }
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, j->n);
    msgpack_pack_str_body(pk, j->b, j->n);
    weir_emit_packed(ctx, ts, NULL, 0);
    return true;
}

static uint32_t fields_of(int kind) {
    return kind == NEXMARK_PERSON    ? NEXMARK_PERSON_FIELDS
           : kind == NEXMARK_AUCTION ? NEXMARK_AUCTION_FIELDS
                                     : NEXMARK_BID_FIELDS;
}

bool nexmark_unpack_event(weir_ctx_t *ctx, const weir_record_t *in, int kind, msgpack_object *obj) {
    if (weir_unpack(ctx, in, obj) != 0)
        return false;
    return obj->type == MSGPACK_OBJECT_ARRAY && obj->via.array.size == fields_of(kind) &&
           obj->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
           obj->via.array.ptr[0].via.u64 == (uint64_t)kind;
}

int64_t nexmark_field_int(const msgpack_object *obj, uint32_t i) {
    return obj->via.array.ptr[i].via.i64;
}

static const char *const PERSON_KEYS[] = {"id",   "name",  "emailAddress", "creditCard",
                                          "city", "state", "dateTime",     "extra"};
static const char *const AUCTION_KEYS[] = {"id",       "itemName", "description", "initialBid",
                                           "reserve",  "dateTime", "expires",     "seller",
                                           "category", "extra"};
static const char *const BID_KEYS[] = {"auction", "bidder",   "price", "channel",
                                       "url",     "dateTime", "extra"};

void nexmark_events_json(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object obj;
    if (weir_unpack(ctx, in, &obj) != 0 || obj.type != MSGPACK_OBJECT_ARRAY ||
        obj.via.array.size < 1 || obj.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        weir_fail(ctx, "events: expected a nexmark event array");
        return;
    }
    const msgpack_object *f = obj.via.array.ptr;
    const char *type;
    const char *const *keys;
    uint32_t nkeys;
    switch (f[0].via.u64) {
    case NEXMARK_PERSON:
        type = "person", keys = PERSON_KEYS, nkeys = NEXMARK_PERSON_FIELDS - 1;
        break;
    case NEXMARK_AUCTION:
        type = "auction", keys = AUCTION_KEYS, nkeys = NEXMARK_AUCTION_FIELDS - 1;
        break;
    case NEXMARK_BID:
        type = "bid", keys = BID_KEYS, nkeys = NEXMARK_BID_FIELDS - 1;
        break;
    default:
        weir_fail(ctx, "events: unknown event kind");
        return;
    }
    if (obj.via.array.size != nkeys + 1) {
        weir_fail(ctx, "events: %s event with %u fields, expected %u", type, obj.via.array.size,
                  nkeys + 1);
        return;
    }
    nexmark_json_t j;
    nexmark_json_begin(&j);
    jb_printf(&j, "\"type\":\"%s\"", type);
    for (uint32_t i = 0; i < nkeys; i++)
        nexmark_json_member(&j, keys[i], &f[i + 1]);
    jb_raw(&j, "}", 1);
    if (j.overflow) {
        weir_fail(ctx, "events: a %s event does not fit the %zu-byte JSON line buffer", type,
                  sizeof(j.b));
        return;
    }
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, j.n);
    msgpack_pack_str_body(pk, j.b, j.n);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

void nexmark_key_u64(uint64_t v, unsigned char out[8]) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)(v & 0xff);
}

uint64_t nexmark_key_to_u64(const void *key, uint32_t len) {
    const unsigned char *k = key;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len && i < 8; i++)
        v = v << 8 | k[i];
    return v;
}

int64_t nexmark_floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

void nexmark_count_create(msgpack_packer *acc, void *udata) {
    (void)udata;
    msgpack_pack_int64(acc, 0);
}

void nexmark_count_add(const msgpack_object *acc, const weir_record_t *in, msgpack_packer *out,
                       void *udata) {
    (void)in, (void)udata;
    msgpack_pack_int64(out, acc->via.i64 + 1);
}

void nexmark_count_merge(const msgpack_object *a, const msgpack_object *b, msgpack_packer *out,
                         void *udata) {
    (void)udata;
    msgpack_pack_int64(out, a->via.i64 + b->via.i64);
}

typedef struct select {
    int kind;
    uint32_t key_field;
    nexmark_pred_fn pred;
    nexmark_first_end_fn first_end;
    int64_t lateness_ms;
} select_t;

#define LATE_TAG 1

static void select_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const select_t *sel = udata;
    msgpack_object obj;
    if (!nexmark_unpack_event(ctx, in, sel->kind, &obj) || (sel->pred && !sel->pred(&obj)))
        return;
    if (sel->first_end &&
        sel->first_end(in->timestamp) - 1 + sel->lateness_ms <= weir_current_watermark(ctx)) {
        weir_emit_to(ctx, LATE_TAG, in);
        return;
    }
    if (sel->key_field == 0) {
        weir_emit(ctx, in);
        return;
    }
    unsigned char key[8];
    nexmark_key_u64((uint64_t)nexmark_field_int(&obj, sel->key_field), key);
    weir_record_t r = *in;
    r.key = key;
    r.key_len = sizeof(key);
    weir_emit(ctx, &r);
}

weir_stream_t *nexmark_select(weir_job_t *job, weir_stream_t *src, const char *name, int kind,
                              uint32_t key_field, nexmark_pred_fn pred,
                              nexmark_first_end_fn first_end, const nexmark_query_opts_t *o) {
    select_t *sel = weir_job_alloc(job, sizeof(*sel));
    *sel = (select_t){kind, key_field, pred, first_end, o->lateness_ms};
    weir_stream_t *s = weir_set_uid(weir_flat_map(src, name, select_fn, sel), name);
    if (!first_end)
        return s;
    if (weir_side_output_tag(s, "late") != LATE_TAG) {
        weir_job_error(job, "%s: the late side output did not get tag %d", name, LATE_TAG);
        return NULL;
    }
    if (o->late_output) {
        char lname[64], sname[64];
        snprintf(lname, sizeof(lname), "%s-late", name);
        snprintf(sname, sizeof(sname), "%s-late-sink", name);
        weir_stream_t *lj =
            weir_map(weir_side_output(s, LATE_TAG), lname, nexmark_events_json, NULL);
        weir_set_uid(weir_sink_file(weir_set_uid(lj, lname), sname, o->late_output), sname);
    }
    return s;
}

weir_stream_t *nexmark_sink(weir_stream_t *out, const nexmark_query_opts_t *o) {
    if (o->output)
        return weir_set_uid(weir_sink_file(out, "sink", o->output), "sink");
    return weir_sink_blackhole(out, "sink");
}
