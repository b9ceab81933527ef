/* Watermark combination (watermark.h): a source's per-split generator and a consumer's valve
 * over its input channels. Owns nothing but the arrays it allocates.
 *
 * Invariants: o.out never decreases; an output status flip is reported once; the output is
 * the minimum over the non-idle, non-removed inputs, or, when every input is idle, the maximum
 * over them (so an all-idle subtask still lets downstream progress to what it has seen).
 * Removed inputs (finished splits) count as INT64_MAX. Threading: none (the owner's thread). */
#include "runtime/task/watermark.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

/* Combines @p n inputs whose watermarks @p wm_of gives into @p o. */
static unsigned combine(weir_wm_out_t *o, const weir_wm_input_t *in, uint32_t n,
                        int64_t (*wm_of)(const weir_wm_input_t *, const void *), const void *arg) {
    int64_t min_active = INT64_MAX, max_idle = INT64_MIN;
    bool any_active = false, any_idle = false;
    for (uint32_t i = 0; i < n; i++) {
        int64_t w = in[i].removed ? INT64_MAX : wm_of(&in[i], arg);
        if (in[i].idle && !in[i].removed) {
            any_idle = true;
            if (w > max_idle)
                max_idle = w;
        } else {
            any_active = true;
            if (w < min_active)
                min_active = w;
        }
    }
    unsigned flags = 0;
    bool idle = !any_active && any_idle;
    int64_t cand = any_active ? min_active : any_idle ? max_idle : INT64_MIN;
    if (idle != o->idle) {
        o->idle = idle;
        flags |= WEIR_WM_STATUS;
    }
    if (cand > o->out) {
        o->out = cand;
        flags |= WEIR_WM_ADVANCED;
    }
    return flags;
}

/* ---- generator ---- */

static int64_t split_wm(const weir_wm_input_t *s, const void *arg) {
    int64_t bound = *(const int64_t *)arg;
    if (s->wm == INT64_MIN)
        return INT64_MIN;
    if (s->wm == INT64_MAX)
        return INT64_MAX;
    /* max - bound - 1 without overflow (bound >= 0) */
    if (s->wm < INT64_MIN + bound + 1)
        return INT64_MIN;
    return s->wm - bound - 1;
}

void weir_wm_gen_init(weir_wm_gen_t *g, int64_t bound_ms, int64_t idle_timeout_ms, int64_t out0) {
    memset(g, 0, sizeof *g);
    g->bound_ms = bound_ms < 0 ? 0 : bound_ms;
    g->idle_ns = idle_timeout_ms > 0 ? idle_timeout_ms * 1000000 : 0;
    g->o.out = out0;
}

void weir_wm_gen_free(weir_wm_gen_t *g) {
    free(g->splits);
    g->splits = NULL;
    g->n = g->cap = 0;
}

void weir_wm_gen_split(weir_wm_gen_t *g, uint32_t idx, int64_t max_ts, int64_t now_ns) {
    /* splits are bounded by the source's configuration (partitions, file splits): abort on OOM */
    if (weir_array_grow((void **)&g->splits, &g->cap, (size_t)idx + 1, sizeof *g->splits, 4) < 0)
        abort();
    for (; g->n <= idx; g->n++)
        g->splits[g->n] = (weir_wm_input_t){.wm = INT64_MIN, .removed = true}; /* unused */
    g->splits[idx] = (weir_wm_input_t){.wm = max_ts, .last_ns = now_ns};
}

void weir_wm_gen_remove(weir_wm_gen_t *g, uint32_t idx) {
    if (idx < g->n)
        g->splits[idx].removed = true;
}

int64_t weir_wm_gen_split_wm(const weir_wm_gen_t *g, uint32_t idx) {
    return idx < g->n ? split_wm(&g->splits[idx], &g->bound_ms) : INT64_MIN;
}

unsigned weir_wm_gen_poll(weir_wm_gen_t *g, int64_t now_ns) {
    if (g->idle_ns)
        for (uint32_t i = 0; i < g->n; i++)
            if (!g->splits[i].idle && now_ns - g->splits[i].last_ns >= g->idle_ns)
                g->splits[i].idle = true;
    if (!g->n) { /* no split (yet): idle when idleness is on, else nothing to say */
        if (!g->idle_ns || g->o.idle)
            return 0;
        g->o.idle = true;
        return WEIR_WM_STATUS;
    }
    return combine(&g->o, g->splits, g->n, split_wm, &g->bound_ms);
}

/* ---- valve ---- */

static int64_t chan_wm(const weir_wm_input_t *c, const void *arg) {
    (void)arg;
    return c->wm;
}

int weir_wm_valve_init(weir_wm_valve_t *v, uint32_t n) {
    memset(v, 0, sizeof *v);
    v->o.out = INT64_MIN;
    if (!n)
        return 0;
    v->in = calloc(n, sizeof *v->in);
    if (!v->in)
        return WEIR_ENOMEM;
    v->n = n;
    for (uint32_t i = 0; i < n; i++)
        v->in[i].wm = INT64_MIN;
    return 0;
}

void weir_wm_valve_free(weir_wm_valve_t *v) {
    free(v->in);
    v->in = NULL;
    v->n = 0;
}

unsigned weir_wm_valve_watermark(weir_wm_valve_t *v, uint32_t i, int64_t wm) {
    if (i >= v->n)
        return 0;
    if (wm > v->in[i].wm)
        v->in[i].wm = wm;
    v->in[i].idle = false;
    return combine(&v->o, v->in, v->n, chan_wm, NULL);
}

unsigned weir_wm_valve_status(weir_wm_valve_t *v, uint32_t i, bool idle) {
    if (i >= v->n)
        return 0;
    v->in[i].idle = idle;
    return combine(&v->o, v->in, v->n, chan_wm, NULL);
}

unsigned weir_wm_valve_end(weir_wm_valve_t *v, uint32_t i) {
    if (i >= v->n)
        return 0;
    v->in[i].wm = INT64_MAX;
    v->in[i].idle = false;
    return combine(&v->o, v->in, v->n, chan_wm, NULL);
}
