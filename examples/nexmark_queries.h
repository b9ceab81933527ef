/* Nexmark event-time queries of nexmark.so (examples/README.md, "nexmark": every query's
 * operators, parameters and output columns; the semantics are the nexmark/nexmark project's
 * SQL). Shared pieces live in nexmark_common.c, each query in nexmark_q<N>.c.
 *
 * Every query reads the generator stream (one msgpack event array per record, timestamped with
 * the event's dateTime, watermarks of 4 s bounded out-of-orderness per source subtask) and
 * writes one JSON object per result line whose keys are the reference SELECT's columns,
 * through the exactly-once file sink (--output DIR) or into a blackhole sink.
 *
 * Lateness (windowed queries): a record is late when the first window whose result it can
 * change has already been emitted, i.e. first_end(dateTime) - 1 + lateness <= the watermark of
 * the select that reads it (chained to the source); a late record is dropped and written to
 * --late-output DIR (as `--query events` writes it). Records that pass are never late for the
 * window operator downstream, whose watermark is at most that one, so a query's result is
 * exactly the reference's over the events minus the late ones.
 * Threading: define() runs once per subtask; everything a query allocates is private to that
 * subtask (weir_job_alloc) and read-only after define. */
#ifndef NEXMARK_QUERIES_H
#define NEXMARK_QUERIES_H

#include <stdbool.h>
#include <stdint.h>
#include <weir/weir.h>

/* Field positions (event arrays, kind first; see nexmark_gen.h). */
#define NEXMARK_PERSON_ID 1
#define NEXMARK_PERSON_NAME 2
#define NEXMARK_PERSON_CITY 5
#define NEXMARK_PERSON_STATE 6
#define NEXMARK_PERSON_DATETIME 7
#define NEXMARK_AUCTION_ID 1
#define NEXMARK_AUCTION_DATETIME 6
#define NEXMARK_AUCTION_EXPIRES 7
#define NEXMARK_AUCTION_SELLER 8
#define NEXMARK_AUCTION_CATEGORY 9

/* Options shared by the queries (parsed by nexmark.c). */
typedef struct nexmark_query_opts {
    int64_t lateness_ms;     /* allowed lateness (queries that take --lateness), else 0 */
    const char *output;      /* exactly-once file sink directory, NULL: blackhole */
    const char *late_output; /* late records as event JSON lines, NULL: dropped */
    int64_t price_modulo;    /* q7 test knob: bid prices taken modulo this (0: off) */
} nexmark_query_opts_t;

/* A bounded JSON line writer (a line that does not fit fails the subtask). */
typedef struct nexmark_json {
    char b[4096];
    size_t n;
    bool overflow;
} nexmark_json_t;

void nexmark_json_begin(nexmark_json_t *j);
/** "key": integer */
void nexmark_json_int(nexmark_json_t *j, const char *key, int64_t v);
/** "key": value of a msgpack integer or string (strings JSON-escaped) */
void nexmark_json_member(nexmark_json_t *j, const char *key, const msgpack_object *v);
/** Closes the object and emits it as one msgpack str line with timestamp @p ts; false (after
 *  weir_fail naming @p what) when it overflowed. */
bool nexmark_json_emit(nexmark_json_t *j, weir_ctx_t *ctx, int64_t ts, const char *what);

/** Unpacks @p in and checks it is an event array of @p kind (NEXMARK_PERSON, _AUCTION, _BID)
 *  with the right length and an unsigned integer kind; false otherwise (no failure). */
bool nexmark_unpack_event(weir_ctx_t *ctx, const weir_record_t *in, int kind, msgpack_object *obj);
/** Integer field @p i of an unpacked event array (int64; the generator writes non-negative
 *  integers for ids, prices and times). */
int64_t nexmark_field_int(const msgpack_object *obj, uint32_t i);

/** events: one event -> one JSON line {"type": ..., <the reference's fields>}. */
void nexmark_events_json(weir_ctx_t *ctx, const weir_record_t *in, void *udata);

/** End of the first window whose result an event at @p ts can change (see above). */
typedef int64_t (*nexmark_first_end_fn)(int64_t ts);
/** Selection predicate over an unpacked event array. */
typedef bool (*nexmark_pred_fn)(const msgpack_object *event);

/** Select (flat_map chained to @p src, uid = name): keeps the events of @p kind for which @p
 *  pred (NULL: all) holds and emits them unchanged but with the key set to field @p key_field
 *  as 8 bytes big-endian (0: the record's key unchanged). With @p first_end it is also the late
 *  split: late events go to its side output "late" (written by "<name>-late" and the file sink
 *  "<name>-late-sink" into o->late_output when set, else dropped). NULL after
 *  weir_job_error. */
weir_stream_t *nexmark_select(weir_job_t *job, weir_stream_t *src, const char *name, int kind,
                              uint32_t key_field, nexmark_pred_fn pred,
                              nexmark_first_end_fn first_end, const nexmark_query_opts_t *o);

/** 8-byte big-endian key of @p v, and back. */
void nexmark_key_u64(uint64_t v, unsigned char out[8]);
uint64_t nexmark_key_to_u64(const void *key, uint32_t len);

/** floor(a / b) for b > 0. */
int64_t nexmark_floor_div(int64_t a, int64_t b);

/** The count aggregate (accumulator: an int64), for weir_aggregate_fns_t. */
void nexmark_count_create(msgpack_packer *acc, void *udata);
void nexmark_count_add(const msgpack_object *acc, const weir_record_t *in, msgpack_packer *out,
                       void *udata);
void nexmark_count_merge(const msgpack_object *a, const msgpack_object *b, msgpack_packer *out,
                         void *udata);

/** The query's sink: the exactly-once file sink into o->output (uid "sink"), or a blackhole.
 *  @returns the sink operator. */
weir_stream_t *nexmark_sink(weir_stream_t *out, const nexmark_query_opts_t *o);

/* The queries: each builds its operators from the source stream and ends with nexmark_sink.
 * @returns 0, or -1 after weir_job_error. */
int nexmark_q3(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
int nexmark_q4(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
int nexmark_q5(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
int nexmark_q7(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
int nexmark_q8(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
int nexmark_q11(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);
int nexmark_q20(weir_job_t *job, weir_stream_t *src, const nexmark_query_opts_t *o);

#endif
