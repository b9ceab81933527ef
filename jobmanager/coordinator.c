/* Owns the checkpoint coordinator (coordinator.h): validation of the checkpointing configuration
 * (values that cannot work are refused with one line naming the key and the fix) and the per-job
 * coordinator state machine as pure functions: begin (ids), acks and final snapshots, readiness,
 * completion, failure and expiry, restore records, counters and history.
 *
 * Invariants: at most one checkpoint in flight; next_id only grows and every id handed out is
 * recorded in the history as IN_PROGRESS; acks are kept only for the in-flight id (final acks
 * until the final checkpoint of the attempt is written, standing for their subtask in every
 * checkpoint completed meanwhile: a subtask that finished early never stops periodic
 * checkpoints); a failure counts as consecutive unless it
 * is the abort of a new attempt; a completion resets the consecutive failures.
 *
 * Threading: no shared state, no I/O, no clocks (times are handed in); not thread-safe per
 * object: the job manager calls it with jm->mu held. */
#include "jobmanager/coordinator.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

/* ---------------------------------------------------------------- configuration */

int weir_ckpt_config_load(const weir_config_t *cfg, weir_ckpt_config_t *out, char *errstr,
                          size_t errlen) {
    memset(out, 0, sizeof *out);
    const char *interval = weir_config_get_str(cfg, "execution.checkpointing.interval");
    const char *dir = weir_config_get_str(cfg, "state.checkpoints.dir");
    out->enabled = interval && *interval;
    out->interval_ms =
        out->enabled ? weir_config_get_ms(cfg, "execution.checkpointing.interval") : 0;
    out->timeout_ms = weir_config_get_ms(cfg, "execution.checkpointing.timeout");
    out->min_pause_ms = weir_config_get_ms(cfg, "execution.checkpointing.min-pause");
    out->tolerable =
        weir_config_get_int(cfg, "execution.checkpointing.tolerable-failed-checkpoints");
    int64_t retained = weir_config_get_int(cfg, "state.checkpoints.num-retained");
    out->incremental = weir_config_get_bool(cfg, "state.backend.incremental");
    if (out->enabled && (!dir || !*dir)) {
        weir_fmt(errstr, errlen,
                 "execution.checkpointing.interval is set but state.checkpoints.dir is not: set "
                 "both");
        return WEIR_ECONFIG;
    }
    if (dir && strlen(dir) >= sizeof out->dir - 64) {
        weir_fmt(errstr, errlen, "state.checkpoints.dir is too long (at most %zu characters)",
                 sizeof out->dir - 64);
        return WEIR_ECONFIG;
    }
    weir_fmt(out->dir, sizeof out->dir, "%s", dir ? dir : "");
    const char *mode = weir_config_get_str(cfg, "execution.checkpointing.mode");
    if (mode && !strcmp(mode, "EXACTLY_ONCE")) {
        out->mode = WEIR_CHECKPOINT_EXACTLY_ONCE;
    } else if (mode && !strcmp(mode, "AT_LEAST_ONCE")) {
        out->mode = WEIR_CHECKPOINT_AT_LEAST_ONCE;
    } else {
        weir_fmt(errstr, errlen,
                 "bad value '%s' for execution.checkpointing.mode (EXACTLY_ONCE or AT_LEAST_ONCE)",
                 mode ? mode : "");
        return WEIR_ECONFIG;
    }
    int64_t maxc = weir_config_get_int(cfg, "execution.checkpointing.max-concurrent-checkpoints");
    if (maxc != 1) {
        weir_fmt(errstr, errlen,
                 "bad value %" PRId64
                 " for execution.checkpointing.max-concurrent-checkpoints: only 1 is supported",
                 maxc);
        return WEIR_ECONFIG;
    }
    /* what cannot work (Flink refuses an interval or a timeout below 10 ms too); durations are
     * multiplied into nanoseconds, so they must stay below INT64_MAX ns */
    if (out->enabled && out->interval_ms < WEIR_CKPT_MIN_MS)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "execution.checkpointing.interval = %" PRId64
                         " ms is below the minimum of %d ms: set it to 10ms or more (or unset it "
                         "to turn checkpointing off)",
                         out->interval_ms, WEIR_CKPT_MIN_MS);
    if (out->timeout_ms < WEIR_CKPT_MIN_MS)
        return weir_errf(errstr, errlen, WEIR_ECONFIG,
                         "execution.checkpointing.timeout = %" PRId64
                         " ms is below the minimum of %d ms (a checkpoint not complete within it "
                         "expires): set it to 10ms or more (default 10min)",
                         out->timeout_ms, WEIR_CKPT_MIN_MS);
    static const struct {
        const char *key;
        size_t off;
    } durations[] = {
        {"execution.checkpointing.interval", offsetof(weir_ckpt_config_t, interval_ms)},
        {"execution.checkpointing.timeout", offsetof(weir_ckpt_config_t, timeout_ms)},
        {"execution.checkpointing.min-pause", offsetof(weir_ckpt_config_t, min_pause_ms)},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        int64_t v = *(const int64_t *)((const char *)out + durations[i].off);
        if (v > WEIR_CKPT_MAX_MS)
            return weir_errf(errstr, errlen, WEIR_ECONFIG,
                             "%s = %" PRId64 " ms is too large: set it to at most %" PRId64
                             " ms (about 292 years)",
                             durations[i].key, v, (int64_t)WEIR_CKPT_MAX_MS);
    }
    if (retained < 1 || retained > 1000000) {
        weir_fmt(errstr, errlen, "bad value %" PRId64 " for state.checkpoints.num-retained (>= 1)",
                 retained);
        return WEIR_ECONFIG;
    }
    out->num_retained = (uint32_t)retained;
    if (!out->enabled)
        out->mode = WEIR_CHECKPOINT_NONE;
    return 0;
}

/* ---------------------------------------------------------------- coordinator */

const char *weir_ckpt_status_name(weir_ckpt_status_t s) {
    switch (s) {
    case WEIR_CKPT_IN_PROGRESS:
        return "IN_PROGRESS";
    case WEIR_CKPT_COMPLETED:
        return "COMPLETED";
    case WEIR_CKPT_FAILED:
        return "FAILED";
    }
    return "?";
}

static void ack_clear(weir_ckpt_ack_t *a) {
    free(a->op_state);
    free(a->keyed);
    memset(a, 0, sizeof *a);
}

int weir_ckpt_coord_init(weir_ckpt_coord_t *c, uint32_t n_vertices, const uint32_t *parallelism) {
    memset(c, 0, sizeof *c);
    c->n_vertices = n_vertices;
    c->offset = calloc(n_vertices + 1, sizeof *c->offset);
    if (!c->offset)
        return WEIR_ENOMEM;
    uint32_t n = 0;
    for (uint32_t v = 0; v < n_vertices; v++) {
        c->offset[v] = n;
        n += parallelism[v];
    }
    c->offset[n_vertices] = n;
    c->n_subtasks = n;
    c->acks = calloc(n ? n : 1, sizeof *c->acks);
    c->finals = calloc(n ? n : 1, sizeof *c->finals);
    if (!c->acks || !c->finals) {
        weir_ckpt_coord_free(c);
        return WEIR_ENOMEM;
    }
    return 0;
}

void weir_ckpt_coord_free(weir_ckpt_coord_t *c) {
    if (!c)
        return;
    for (uint32_t i = 0; c->acks && i < c->n_subtasks; i++)
        ack_clear(&c->acks[i]);
    for (uint32_t i = 0; c->finals && i < c->n_subtasks; i++)
        ack_clear(&c->finals[i]);
    free(c->acks);
    free(c->finals);
    free(c->offset);
    memset(c, 0, sizeof *c);
}

uint32_t weir_ckpt_coord_index(const weir_ckpt_coord_t *c, uint32_t v, uint32_t s) {
    return c->offset[v] + s;
}

static weir_ckpt_hist_t *hist_find(weir_ckpt_coord_t *c, uint64_t id) {
    for (uint32_t i = 0; i < c->hist_len; i++) {
        weir_ckpt_hist_t *h = &c->hist[(c->hist_start + i) % WEIR_CKPT_HISTORY];
        if (h->id == id)
            return h;
    }
    return NULL;
}

static weir_ckpt_hist_t *hist_push(weir_ckpt_coord_t *c, uint64_t id, int64_t wall_ms) {
    weir_ckpt_hist_t *h;
    if (c->hist_len < WEIR_CKPT_HISTORY) {
        h = &c->hist[(c->hist_start + c->hist_len) % WEIR_CKPT_HISTORY];
        c->hist_len++;
    } else {
        h = &c->hist[c->hist_start];
        c->hist_start = (c->hist_start + 1) % WEIR_CKPT_HISTORY;
    }
    memset(h, 0, sizeof *h);
    h->id = id;
    h->status = WEIR_CKPT_IN_PROGRESS;
    h->trigger_ms = wall_ms;
    h->duration_ms = -1;
    return h;
}

const weir_ckpt_hist_t *weir_ckpt_coord_hist(const weir_ckpt_coord_t *c, uint32_t i) {
    return &c->hist[(c->hist_start + i) % WEIR_CKPT_HISTORY];
}

static void pending_drop(weir_ckpt_coord_t *c) {
    c->completing_id = 0;
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        ack_clear(&c->acks[i]);
    c->pending_id = 0;
    c->pending_kind = WEIR_CK_CHECKPOINT;
    c->pending_target[0] = 0;
}

static void record_failure(weir_ckpt_coord_t *c, const char *why, int64_t now_ns) {
    weir_ckpt_hist_t *h = hist_find(c, c->pending_id);
    if (h) {
        h->status = WEIR_CKPT_FAILED;
        h->duration_ms = (now_ns - c->pending_trigger_ns) / 1000000;
        weir_fmt(h->failure, sizeof h->failure, "%s", why);
    }
    c->n_failed++;
    c->last_end_ns = now_ns;
    pending_drop(c);
}

void weir_ckpt_coord_new_attempt(weir_ckpt_coord_t *c, int64_t now_ns, const char *why) {
    if (c->pending_id)
        record_failure(c, why, now_ns);
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        ack_clear(&c->finals[i]);
    c->n_finals = 0;
    c->final_done = false;
    c->completing_id = 0;
    c->running_since_ns = 0;
    c->last_trigger_ns = 0;
}

bool weir_ckpt_coord_due(weir_ckpt_coord_t *c, const weir_ckpt_config_t *cfg, bool all_running,
                         int64_t now_ns) {
    /* Final snapshots of some subtasks do not stop periodic checkpoints (they stand for those
     * subtasks in each); once every subtask sent one, the final checkpoint takes over. */
    if (!cfg->enabled || c->pending_id || c->completing_id || c->final_done ||
        (c->n_subtasks > 0 && c->n_finals == c->n_subtasks))
        return false;
    if (!all_running) {
        c->running_since_ns = 0;
        return false;
    }
    if (!c->running_since_ns)
        c->running_since_ns = now_ns;
    int64_t base = c->last_trigger_ns ? c->last_trigger_ns : c->running_since_ns;
    if (now_ns - base < cfg->interval_ms * 1000000)
        return false;
    if (c->last_end_ns && now_ns - c->last_end_ns < cfg->min_pause_ms * 1000000)
        return false;
    return true;
}

bool weir_ckpt_coord_finished(const weir_ckpt_coord_t *c, uint32_t idx) {
    return idx < c->n_subtasks && c->finals[idx].acked;
}

uint64_t weir_ckpt_coord_begin(weir_ckpt_coord_t *c, int64_t now_ns, int64_t wall_ms) {
    if (c->next_id == 0)
        c->next_id = 1;
    uint64_t id = c->next_id++;
    pending_drop(c);
    c->pending_id = id;
    c->pending_trigger_ms = wall_ms;
    c->pending_trigger_ns = now_ns;
    c->last_trigger_ns = now_ns;
    c->n_triggered++;
    hist_push(c, id, wall_ms);
    return id;
}

uint64_t weir_ckpt_coord_begin_savepoint(weir_ckpt_coord_t *c, uint32_t kind, const char *target,
                                         int64_t now_ns, int64_t wall_ms) {
    uint64_t id = weir_ckpt_coord_begin(c, now_ns, wall_ms);
    c->pending_kind = kind;
    weir_fmt(c->pending_target, sizeof c->pending_target, "%s", target);
    weir_ckpt_hist_t *h = hist_find(c, id);
    if (h)
        h->kind = kind;
    return id;
}

uint64_t weir_ckpt_coord_begin_final(weir_ckpt_coord_t *c, int64_t now_ns, int64_t wall_ms) {
    if (c->next_id == 0)
        c->next_id = 1;
    uint64_t id = c->next_id++;
    c->pending_trigger_ns = now_ns;
    c->pending_trigger_ms = wall_ms;
    c->n_triggered++;
    hist_push(c, id, wall_ms);
    return id;
}

bool weir_ckpt_coord_ack(weir_ckpt_coord_t *c, uint32_t idx, uint64_t id, bool final,
                         weir_ckpt_ack_t *ack) {
    weir_ckpt_ack_t *slot = NULL;
    if (idx < c->n_subtasks) {
        if (final && !c->finals[idx].acked && !c->final_done)
            slot = &c->finals[idx];
        else if (!final && c->pending_id && id == c->pending_id && !c->acks[idx].acked)
            slot = &c->acks[idx];
    }
    if (!slot) {
        ack_clear(ack);
        return false;
    }
    *slot = *ack;
    slot->acked = true;
    memset(ack, 0, sizeof *ack);
    if (final)
        c->n_finals++;
    return true;
}

/* The snapshot that counts for subtask i in the in-flight checkpoint, NULL when missing. */
static const weir_ckpt_ack_t *effective(const weir_ckpt_coord_t *c, uint32_t i, bool final) {
    if (!final && c->acks[i].acked)
        return &c->acks[i];
    if (c->finals[i].acked)
        return &c->finals[i];
    return NULL;
}

uint32_t weir_ckpt_coord_acked(const weir_ckpt_coord_t *c, uint64_t *state_size) {
    uint32_t n = 0;
    uint64_t size = 0;
    for (uint32_t i = 0; c->pending_id && i < c->n_subtasks; i++) {
        const weir_ckpt_ack_t *a = effective(c, i, false);
        if (a) {
            n++;
            size += a->state_size;
        }
    }
    if (state_size)
        *state_size = size;
    return n;
}

bool weir_ckpt_coord_ready(const weir_ckpt_coord_t *c) {
    if (!c->pending_id || c->completing_id)
        return false;
    for (uint32_t i = 0; i < c->n_subtasks; i++)
        if (!effective(c, i, false))
            return false;
    return true;
}

bool weir_ckpt_coord_final_ready(const weir_ckpt_coord_t *c) {
    return !c->pending_id && !c->completing_id && !c->final_done && c->n_subtasks > 0 &&
           c->n_finals == c->n_subtasks;
}

int weir_ckpt_coord_build_meta(const weir_ckpt_coord_t *c, const char *job_id, uint64_t id,
                               bool final, int64_t trigger_ms, int64_t complete_ms,
                               weir_ckpt_meta_t *m) {
    memset(m, 0, sizeof *m);
    weir_fmt(m->job, sizeof m->job, "%s", job_id);
    m->id = id;
    m->final = final;
    m->trigger_ms = trigger_ms;
    m->complete_ms = complete_ms;
    m->tasks = calloc(c->n_subtasks ? c->n_subtasks : 1, sizeof *m->tasks);
    if (!m->tasks)
        return WEIR_ENOMEM;
    for (uint32_t v = 0; v < c->n_vertices; v++)
        for (uint32_t i = c->offset[v]; i < c->offset[v + 1]; i++) {
            const weir_ckpt_ack_t *a = effective(c, i, final);
            weir_ckpt_task_t *t = &m->tasks[m->n_tasks++];
            t->vertex = v;
            t->subtask = i - c->offset[v];
            if (!a)
                continue;
            t->state_size = a->state_size;
            if (a->op_state) {
                t->op_state = malloc(a->op_state_len ? a->op_state_len : 1);
                if (!t->op_state)
                    goto oom;
                memcpy(t->op_state, a->op_state, a->op_state_len);
                t->op_state_len = a->op_state_len;
            }
            if (a->keyed && !(t->keyed = strdup(a->keyed)))
                goto oom;
        }
    return 0;
oom:
    weir_ckpt_meta_clear(m);
    return WEIR_ENOMEM;
}

void weir_ckpt_coord_complete(weir_ckpt_coord_t *c, uint64_t id, bool final, const char *path,
                              int64_t now_ns, int64_t wall_ms) {
    (void)wall_ms;
    weir_ckpt_hist_t *h = hist_find(c, id);
    weir_ckpt_hist_t tmp = {.id = id, .trigger_ms = c->pending_trigger_ms};
    if (!h)
        h = &tmp;
    h->status = WEIR_CKPT_COMPLETED;
    h->duration_ms = (now_ns - c->pending_trigger_ns) / 1000000;
    h->state_size = h->uploaded_size = 0;
    h->alignment_ms = h->sync_ms = h->async_ms = 0;
    for (uint32_t i = 0; i < c->n_subtasks; i++) {
        const weir_ckpt_ack_t *a = effective(c, i, final);
        if (!a)
            continue;
        h->state_size += a->state_size;
        h->uploaded_size += a->uploaded_size;
        int64_t al = (int64_t)(a->alignment_ns / 1000000), sy = (int64_t)(a->sync_ns / 1000000),
                as = (int64_t)(a->async_ns / 1000000);
        if (al > h->alignment_ms)
            h->alignment_ms = al;
        if (sy > h->sync_ms)
            h->sync_ms = sy;
        if (as > h->async_ms)
            h->async_ms = as;
    }
    /* a savepoint is a restore point too: a failover after it restores it (its pre-committed
     * transactions are then committed, never aborted, so a job resumed from it later finds them) */
    c->latest = *h;
    c->have_completed = true;
    c->latest_id = id;
    weir_fmt(c->latest_path, sizeof c->latest_path, "%s", path);
    c->n_completed++;
    c->consecutive_failures = 0;
    c->last_end_ns = now_ns;
    c->completing_id = 0;
    if (final)
        c->final_done = true;
    else
        pending_drop(c);
}

void weir_ckpt_coord_completing(weir_ckpt_coord_t *c, uint64_t id) {
    c->completing_id = id;
}

void weir_ckpt_coord_complete_late(weir_ckpt_coord_t *c, uint64_t id, bool final,
                                   const char *path) {
    (void) final;
    weir_ckpt_hist_t *h = hist_find(c, id);
    if (h) {
        if (h->status == WEIR_CKPT_FAILED && c->n_failed)
            c->n_failed--;
        h->status = WEIR_CKPT_COMPLETED;
        h->failure[0] = 0;
    }
    c->n_completed++;
    if (c->have_completed && c->latest_id >= id)
        return;
    if (h)
        c->latest = *h;
    else
        c->latest = (weir_ckpt_hist_t){.id = id, .status = WEIR_CKPT_COMPLETED, .duration_ms = -1};
    c->have_completed = true;
    c->latest_id = id;
    weir_fmt(c->latest_path, sizeof c->latest_path, "%s", path);
}

bool weir_ckpt_coord_fail(weir_ckpt_coord_t *c, const char *why, int64_t tolerable,
                          int64_t now_ns) {
    if (!c->pending_id)
        return false;
    bool savepoint = c->pending_kind != WEIR_CK_CHECKPOINT;
    record_failure(c, why, now_ns);
    if (savepoint)
        return false; /* a failed savepoint says nothing about the job's checkpoints */
    c->consecutive_failures++;
    return (int64_t)c->consecutive_failures > tolerable;
}

bool weir_ckpt_coord_expired(const weir_ckpt_coord_t *c, const weir_ckpt_config_t *cfg,
                             int64_t now_ns) {
    return c->pending_id && !c->completing_id &&
           now_ns - c->pending_trigger_ns > cfg->timeout_ms * 1000000;
}

void weir_ckpt_coord_restored(weir_ckpt_coord_t *c, uint64_t id, const char *path,
                              int64_t wall_ms) {
    c->have_restored = true;
    c->restored_id = id;
    weir_fmt(c->restored_path, sizeof c->restored_path, "%s", path);
    c->restored_ms = wall_ms;
    c->n_restored++;
}
