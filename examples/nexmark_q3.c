/* Nexmark q3, local item suggestion (nexmark/nexmark q3.sql): the incremental inner join of the
 * auctions of category 10 with the persons of OR, ID or CA on auction.seller = person.id, as
 * {"name", "city", "state", "id"} (person name, city, state; auction id), one line per pair
 * whatever the arrival order.
 *
 *   select "q3-auctions" (category 10, key seller) -> key_by --+
 *   select "q3-persons" (state OR/ID/CA, key id) -> key_by ----+-> "q3-join" (weir_co_process
 *   keyed by person id: auctions first, persons second) -> JSON -> sink.
 * State of "q3-join" per person id: value "person" = [name, city, state] (msgpack) once the
 * person arrived; list "auctions" = the ids (msgpack) of the auctions that arrived before it,
 * cleared when it arrives. As the reference's regular join, nothing expires: a person id is
 * kept for the job's lifetime (each id is generated once).
 * Threading: subtask thread only; the state ids are written at define time, read-only after. */
#include <string.h>

#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define Q3_CATEGORY 10

typedef struct q3 {
    weir_state_id person, auctions;
} q3_t;

static bool is_category(const msgpack_object *a) {
    return nexmark_field_int(a, NEXMARK_AUCTION_CATEGORY) == Q3_CATEGORY;
}

static bool is_state(const msgpack_object *p) {
    const msgpack_object *s = &p->via.array.ptr[NEXMARK_PERSON_STATE];
    if (s->type != MSGPACK_OBJECT_STR || s->via.str.size != 2)
        return false;
    return !memcmp(s->via.str.ptr, "OR", 2) || !memcmp(s->via.str.ptr, "ID", 2) ||
           !memcmp(s->via.str.ptr, "CA", 2);
}

/* Emits one pair from a stored person ([name, city, state]) and an auction id. */
static void emit_pair(weir_ctx_t *ctx, const msgpack_object *person, const msgpack_object *id,
                      int64_t ts) {
    nexmark_json_t j;
    nexmark_json_begin(&j);
    nexmark_json_member(&j, "name", &person->via.array.ptr[0]);
    nexmark_json_member(&j, "city", &person->via.array.ptr[1]);
    nexmark_json_member(&j, "state", &person->via.array.ptr[2]);
    nexmark_json_member(&j, "id", id);
    nexmark_json_emit(&j, ctx, ts, "q3");
}

/* Unpacks stored msgpack bytes into @p z; false when they are not one object. */
static bool unpack_stored(const void *p, uint32_t n, msgpack_zone *z, msgpack_object *out) {
    size_t off = 0;
    return msgpack_unpack(p, n, &off, z, out) == MSGPACK_UNPACK_SUCCESS;
}

static void on_auction(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q3_t *q = udata;
    msgpack_object a;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_AUCTION, &a)) {
        weir_fail(ctx, "q3-join: expected an auction on the first input");
        return;
    }
    const msgpack_object *id = &a.via.array.ptr[NEXMARK_AUCTION_ID];
    const void *pv;
    uint32_t pn;
    int rc = weir_value_get(ctx, q->person, &pv, &pn);
    if (rc < 0)
        return;
    if (rc == 0) {
        msgpack_zone z;
        msgpack_zone_init(&z, 256);
        msgpack_object person;
        if (unpack_stored(pv, pn, &z, &person) && person.type == MSGPACK_OBJECT_ARRAY &&
            person.via.array.size == 3)
            emit_pair(ctx, &person, id, in->timestamp);
        else
            weir_fail(ctx, "q3-join: a stored person is not [name, city, state]");
        msgpack_zone_destroy(&z);
        return;
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *id);
    weir_list_add(ctx, q->auctions, b.data, (uint32_t)b.size);
    msgpack_sbuffer_destroy(&b);
}

typedef struct waiting {
    weir_ctx_t *ctx;
    const msgpack_object *person;
    int64_t ts;
} waiting_t;

static int emit_waiting(const void *val, uint32_t len, void *arg) {
    waiting_t *w = arg;
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    msgpack_object id;
    if (unpack_stored(val, len, &z, &id))
        emit_pair(w->ctx, w->person, &id, w->ts);
    msgpack_zone_destroy(&z);
    return 0;
}

static void on_person(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    const q3_t *q = udata;
    msgpack_object p;
    if (!nexmark_unpack_event(ctx, in, NEXMARK_PERSON, &p)) {
        weir_fail(ctx, "q3-join: expected a person on the second input");
        return;
    }
    const msgpack_object *f = p.via.array.ptr;
    msgpack_object fields[3] = {f[NEXMARK_PERSON_NAME], f[NEXMARK_PERSON_CITY],
                                f[NEXMARK_PERSON_STATE]};
    msgpack_object person = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {.size = 3, .ptr = fields}};
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, person);
    int rc = weir_value_put(ctx, q->person, b.data, (uint32_t)b.size);
    msgpack_sbuffer_destroy(&b);
    if (rc < 0)
        return;
    waiting_t w = {ctx, &person, in->timestamp};
    if (weir_list_foreach(ctx, q->auctions, emit_waiting, &w) == 0)
        weir_list_clear(ctx, q->auctions);
}

int nexmark_q3(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *auctions = nexmark_select(job, src, "q3-auctions", NEXMARK_AUCTION,
                                             NEXMARK_AUCTION_SELLER, is_category, NULL, o);
    weir_stream_t *persons = nexmark_select(job, src, "q3-persons", NEXMARK_PERSON,
                                            NEXMARK_PERSON_ID, is_state, NULL, o);
    q3_t *q = weir_job_alloc(job, sizeof(*q));
    weir_stream_t *join =
        weir_co_process(weir_key_by(auctions, NULL, NULL), weir_key_by(persons, NULL, NULL),
                        "q3-join", on_auction, on_person, q);
    if (!join)
        return -1;
    weir_set_uid(join, "q3-join");
    q->person = weir_value_state(join, "person");
    q->auctions = weir_list_state(join, "auctions");
    nexmark_sink(join, o);
    return 0;
}
