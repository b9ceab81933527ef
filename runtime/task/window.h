/* Window assignment helpers of runtime/task/window.c, exposed for the unit tests. */
#ifndef WEIR_RUNTIME_TASK_WINDOW_H
#define WEIR_RUNTIME_TASK_WINDOW_H

#include <weir/weir.h>

/** Start of the pane of size @p pane holding @p ts (aligned to spec->offset_ms). */
int64_t weir__window_pane_start(const weir_window_spec_t *s, int64_t pane, int64_t ts);
/** Ends of the first and the last window (tumbling or sliding) holding the pane @p ps. */
void weir__window_pane_ends(const weir_window_spec_t *s, int64_t pane, int64_t ps,
                            int64_t *first_end, int64_t *last_end);
/** The spec's problem in one line, or NULL when it is usable. */
const char *weir__window_spec_check(const weir_window_spec_t *s, const weir_aggregate_fns_t *f);

#endif
