/* Nexmark q11, user sessions (nexmark/nexmark q11.sql): the number of bids of each bidder per
 * session, sessions with a 10 s gap (a bid exactly 10 s after the previous one continues the
 * session, as Flink merges touching windows), as {"bidder", "bid_count", "starttime",
 * "endtime"} with endtime = the session's last bid + 10 s.
 *
 *   late split "q11-bids" (bids, key bidder; late: dateTime - 1 + lateness <= watermark) ->
 *   key_by -> "q11-sessions" (session window aggregate, gap 10 s, allowed lateness --lateness;
 *   count) -> JSON -> sink.
 * The late rule uses dateTime itself (not dateTime + gap) because a bid at t can extend a
 * session ending at t, which fired when the watermark reached t - 1 and was removed at
 * t - 1 + lateness: a bid that passes reaches no session already removed, so every bid lands
 * in its reference session. With --lateness > 0 a bid joining a fired session makes it fire
 * again (late firing): the superseded lines are contained in the final session (same bidder,
 * interval inside it, smaller or equal count).
 * Threading: subtask thread only; no state outside the window operator. */
#include "nexmark_gen.h"
#include "nexmark_queries.h"

#define Q11_GAP_MS 10000

static int64_t q11_first_end(int64_t ts) {
    return ts;
}

static void session_result(weir_ctx_t *ctx, const weir_window_t *w, const msgpack_object *acc,
                           void *udata) {
    (void)udata;
    uint32_t kl;
    const void *key = weir_current_key(ctx, &kl);
    nexmark_json_t j;
    nexmark_json_begin(&j);
    nexmark_json_int(&j, "bidder", (int64_t)nexmark_key_to_u64(key, kl));
    nexmark_json_int(&j, "bid_count", acc->via.i64);
    nexmark_json_int(&j, "starttime", w->start);
    nexmark_json_int(&j, "endtime", w->end);
    nexmark_json_emit(&j, ctx, w->end - 1, "q11");
}

int nexmark_q11(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o) {
    weir_stream_t *bids = nexmark_select(job, src, "q11-bids", NEXMARK_BID, NEXMARK_BID_BIDDER,
                                         NULL, q11_first_end, o);
    if (!bids)
        return -1;
    static const weir_aggregate_fns_t fns = {nexmark_count_create, nexmark_count_add,
                                             nexmark_count_merge, session_result};
    weir_window_spec_t spec = {
        .kind = WEIR_WINDOW_SESSION, .gap_ms = Q11_GAP_MS, .allowed_lateness_ms = o->lateness_ms};
    weir_stream_t *s =
        weir_window_aggregate(weir_key_by(bids, NULL, NULL), "q11-sessions", &spec, &fns, NULL);
    if (!s)
        return -1;
    weir_set_uid(s, "q11-sessions");
    nexmark_sink(s, o);
    return 0;
}
