/* Pure event-time watermark logic (no I/O, no threads, no clock of its own: times are passed in).
 *
 * - weir_wm_gen_t: a source subtask's generator. One entry per split (file byte range, Kafka
 *   partition, or the whole subtask range of datagen / generator) with the maximum record
 *   timestamp seen; split watermark = max - bound - 1; a split without a record for
 *   idle_timeout is idle; the output is the minimum over the active splits.
 * - weir_wm_valve_t: a consuming subtask's combiner over its input channels (each with its
 *   watermark and idle status); the output is the minimum over the active channels.
 *
 * Both never move their output backwards; when every input is idle the output is idle (and
 * advances to the maximum over the idle inputs, as Flink's StatusWatermarkValve does).
 * A poll / update returns WEIR_WM_ADVANCED and/or WEIR_WM_STATUS flags telling the caller what
 * to forward: the new `out` watermark, the new `idle` status. */
#ifndef WEIR_RUNTIME_WATERMARK_H
#define WEIR_RUNTIME_WATERMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEIR_WM_ADVANCED 1u /* out grew: forward it */
#define WEIR_WM_STATUS 2u   /* idle flipped: forward the new status */

/** One input (split or channel). */
typedef struct weir_wm_input {
    int64_t wm;      /* channel: last watermark received; split: max timestamp seen */
    int64_t last_ns; /* split: time of its last record (or of its registration) */
    bool idle;
    bool removed; /* split finished / channel ended and no longer counted */
} weir_wm_input_t;

/** Output state shared by both. */
typedef struct weir_wm_out {
    int64_t out; /* last forwarded watermark, INT64_MIN before the first */
    bool idle;   /* last forwarded status */
} weir_wm_out_t;

typedef struct weir_wm_gen {
    int64_t bound_ms; /* max out-of-orderness (>= 0) */
    int64_t idle_ns;  /* 0 = never idle */
    weir_wm_input_t *splits;
    uint32_t n;
    size_t cap;
    weir_wm_out_t o;
} weir_wm_gen_t;

typedef struct weir_wm_valve {
    weir_wm_input_t *in;
    uint32_t n;
    weir_wm_out_t o;
} weir_wm_valve_t;

/** Generator with no split yet; @p out0 is the restored output (INT64_MIN when fresh). */
void weir_wm_gen_init(weir_wm_gen_t *g, int64_t bound_ms, int64_t idle_timeout_ms, int64_t out0);
void weir_wm_gen_free(weir_wm_gen_t *g);
/** Registers split @p idx (indices below it never registered do not count) with max timestamp @p
 * max_ts (INT64_MIN when fresh, the checkpointed value on restore) at time @p now_ns. */
void weir_wm_gen_split(weir_wm_gen_t *g, uint32_t idx, int64_t max_ts, int64_t now_ns);
/** A split finished (end of its range): it no longer holds the minimum back. */
void weir_wm_gen_remove(weir_wm_gen_t *g, uint32_t idx);
/** A record of timestamp @p ts from split @p idx at @p now_ns (registers the split if new). */
static inline void weir_wm_gen_record(weir_wm_gen_t *g, uint32_t idx, int64_t ts, int64_t now_ns) {
    if (idx >= g->n)
        weir_wm_gen_split(g, idx, INT64_MIN, now_ns);
    weir_wm_input_t *s = &g->splits[idx];
    if (ts > s->wm)
        s->wm = ts;
    s->last_ns = now_ns;
    s->idle = false;
}
/** Recomputes the output at @p now_ns (a generator without any split is idle when idleness is
 * on). @returns WEIR_WM_* flags. */
unsigned weir_wm_gen_poll(weir_wm_gen_t *g, int64_t now_ns);
/** The watermark of split @p idx (max - bound - 1, INT64_MIN without a record). */
int64_t weir_wm_gen_split_wm(const weir_wm_gen_t *g, uint32_t idx);

/** Valve over @p n channels, all active at INT64_MIN. @returns 0 or WEIR_ENOMEM. */
int weir_wm_valve_init(weir_wm_valve_t *v, uint32_t n);
void weir_wm_valve_free(weir_wm_valve_t *v);
/** Channel @p i delivered watermark @p wm (a lower one than before is ignored); it becomes
 * active. @returns WEIR_WM_* flags. */
unsigned weir_wm_valve_watermark(weir_wm_valve_t *v, uint32_t i, int64_t wm);
/** Channel @p i delivered an idle status. @returns WEIR_WM_* flags. */
unsigned weir_wm_valve_status(weir_wm_valve_t *v, uint32_t i, bool idle);
/** Channel @p i ended: its watermark is INT64_MAX. @returns WEIR_WM_* flags. */
unsigned weir_wm_valve_end(weir_wm_valve_t *v, uint32_t i);

#endif
