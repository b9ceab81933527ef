/* Window assignment helpers of runtime/task/window.c, exposed for the unit tests, and the
 * window operator join.c builds weir_window_cogroup and weir_window_join on. */
#ifndef WEIR_RUNTIME_TASK_WINDOW_H
#define WEIR_RUNTIME_TASK_WINDOW_H

#include <stddef.h>

#include <weir/weir.h>

/** Start of the pane of size @p pane holding @p ts (aligned to spec->offset_ms). */
int64_t weir__window_pane_start(const weir_window_spec_t *s, int64_t pane, int64_t ts);
/** Ends of the first and the last window (tumbling or sliding) holding the pane @p ps. */
void weir__window_pane_ends(const weir_window_spec_t *s, int64_t pane, int64_t ps,
                            int64_t *first_end, int64_t *last_end);
/** A session [start, end) of one key in window state. */
typedef struct weir_window_session {
    int64_t start, end;
} weir_window_session_t;
/** The session a record at @p ts makes with @p n sessions of its key: [ts, ts+gap) merged with
 *  every session it overlaps or touches (start <= ts+gap and ts <= end, as Flink). */
void weir__window_session_merge(const weir_window_session_t *s, size_t n, int64_t ts, int64_t gap,
                                int64_t *start, int64_t *end);
/** The window shape's problem (kind, sizes, lateness, trigger) in one line, or NULL. */
const char *weir__window_shape_check(const weir_window_spec_t *s);
/** The window operator of weir_window_cogroup (join.c) on a checked shape: a weir_co_process
 *  keeping each record with its side under its pane or session (window.c's assignment,
 *  merging, lateness and triggers), calling @p fn with both sides when a window fires. */
weir_stream_t *weir__window_cogroup_op(weir_stream_t *left, weir_stream_t *right, const char *name,
                                       const weir_window_spec_t *spec, weir_cogroup_fn fn,
                                       void *udata);
/** The spec's problem in one line (shape and aggregate functions), or NULL when usable. */
const char *weir__window_spec_check(const weir_window_spec_t *s, const weir_aggregate_fns_t *f);

#endif
