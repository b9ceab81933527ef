/* Nexmark q8, monitor new users (nexmark/nexmark q8.sql): the persons who created an auction
 * in the same 10 s tumbling window as they entered the system, as {"id", "name", "starttime"}
 * (one line per person and window: the SQL's GROUP BY makes both sides distinct).
 *
 *   select "q8-persons" (key id; late split) -> key_by ---+
 *   select "q8-auctions" (key seller; late split) -> key_by +-> "q8-join" (weir_window_cogroup,
 *   tumbling 10 s, allowed lateness --lateness): a window with records on both sides emits
 *   one line per distinct person name (a person id is generated once, so one line) -> sink.
 * Late split of both inputs: window end - 1 + lateness <= watermark. With --lateness > 0 a
 * late record re-fires its window (late firing), which writes the window's line again: the
 * output then holds each reference line at least once and no other line.
 * Threading: subtask thread only; no state outside the co-group operator. */
#include <string.h>

#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define Q8_SIZE_MS 10000

static int64_t q8_first_end(int64_t ts) {
    return nexmark_floor_div(ts, Q8_SIZE_MS) * Q8_SIZE_MS + Q8_SIZE_MS;
}

static void cogroup(weir_ctx_t *ctx, const weir_window_t *w, const weir_record_t *persons,
                    size_t n_persons, const weir_record_t *auctions, size_t n_auctions,
                    void *udata) {
    (void)udata, (void)auctions;
    if (n_persons == 0 || n_auctions == 0)
        return;
    for (size_t i = 0; i < n_persons; i++) {
        msgpack_object p;
        if (!nexmark_unpack_event(ctx, &persons[i], NEXMARK_PERSON, &p)) {
            weir_fail(ctx, "q8-join: expected a person on the first input");
            return;
        }
        const msgpack_object *name = &p.via.array.ptr[NEXMARK_PERSON_NAME];
        bool seen = false; /* distinct (id, name): the same name earlier in this window */
        for (size_t k = 0; k < i && !seen; k++) {
            msgpack_object q;
            if (nexmark_unpack_event(ctx, &persons[k], NEXMARK_PERSON, &q)) {
                const msgpack_object *qn = &q.via.array.ptr[NEXMARK_PERSON_NAME];
                seen = qn->via.str.size == name->via.str.size &&
                       !memcmp(qn->via.str.ptr, name->via.str.ptr, name->via.str.size);
            }
        }
        if (seen)
            continue;
        nexmark_json_t j;
        nexmark_json_begin(&j);
        nexmark_json_member(&j, "id", &p.via.array.ptr[NEXMARK_PERSON_ID]);
        nexmark_json_member(&j, "name", name);
        nexmark_json_int(&j, "starttime", w->start);
        if (!nexmark_json_emit(&j, ctx, w->end - 1, "q8"))
            return;
    }
}

int nexmark_q8(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *persons = nexmark_select(job, src, "q8-persons", NEXMARK_PERSON,
                                            NEXMARK_PERSON_ID, NULL, q8_first_end, o);
    weir_stream_t *auctions = nexmark_select(job, src, "q8-auctions", NEXMARK_AUCTION,
                                             NEXMARK_AUCTION_SELLER, NULL, q8_first_end, o);
    if (!persons || !auctions)
        return -1;
    weir_window_spec_t spec = {
        .kind = WEIR_WINDOW_TUMBLING, .size_ms = Q8_SIZE_MS, .allowed_lateness_ms = o->lateness_ms};
    weir_stream_t *join =
        weir_window_cogroup(weir_key_by(persons, NULL, NULL), weir_key_by(auctions, NULL, NULL),
                            "q8-join", &spec, cogroup, NULL);
    if (!join)
        return -1;
    weir_set_uid(join, "q8-join");
    nexmark_sink(join, o);
    return 0;
}
