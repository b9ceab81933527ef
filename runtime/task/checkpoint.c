/* The subtask's side of checkpoints and savepoints (docs/checkpointing.md) and its keyed-state
 * backend: ACK / DECLINE, the uploader thread (the asynchronous part of snapshots of stateful
 * chains), snapshots (operator state + keyed state) and forwarding barriers, barrier alignment,
 * checkpoint triggers (sources; a stop-with-savepoint suspends the source) and completion
 * notifications, the final snapshot; opening the state backend (fresh, or restored from a keyed
 * restore document), restoring operator state, removing the state directory.
 *
 * Invariants:
 *  - A non-source never processes an entry that follows barrier n on a channel before its
 *    snapshot of n (exactly-once): the channel whose barrier arrived is blocked (credits
 *    withheld; loop.c queues its buffers) until every channel's barrier arrived (an ended
 *    channel counts); then snapshot, barrier downstream, unblock (granting the withheld
 *    credits). At-least-once counts barriers without blocking.
 *  - Barriers with an id <= the last snapshot (or below the alignment in progress) are stale and
 *    dropped; a newer barrier abandons the alignment in progress. After the final snapshot,
 *    barriers and triggers are ignored; with checkpointing off all of this is skipped.
 *  - The barrier goes downstream also when the snapshot is declined: downstream must not stay
 *    blocked. It goes with the kind and target it came with (alignment copies them; abandoning
 *    an alignment takes the newer barrier's), so every subtask snapshots barrier n the same way.
 *  - A savepoint or stop snapshot takes the same operator hooks as a checkpoint; its keyed state
 *    is uploaded self-contained into <target>/<vertex>-<subtask>/ and never confirmed: the ids
 *    of savepoints are remembered (sp_ids) until a notified checkpoint passes them, and a notify
 *    of one of them (the job manager sends none but the stop's final one) confirms nothing.
 *  - A source that snapshotted a stop-with-savepoint n is suspended: run() is not called again,
 *    so barrier n is the last thing it emits; the final notify of n (or of a later id) to a
 *    subtask that has not finished commits everything (notify_complete with final = true) and
 *    ends it without end of input and without a final snapshot (loop.c leaves its loop).
 *  - ACKs of a subtask leave in snapshot order: with keyed state every ACK (also the final one)
 *    goes through the uploader's FIFO; the backend is closed only after the uploader joined.
 *  - Operator state is one msgpack array with one element per chain operator (nil when it has
 *    no snapshot hook; a hook packs exactly one object); the final snapshot passes
 *    WEIR_CHECKPOINT_ID_FINAL to the hooks and is acked with id 0. A restored array of another
 *    length fails the task.
 *  - Keyed state is notified complete (weir_state_snapshot_confirm) only after every operator's
 *    notify_complete, and not for a checkpoint that holds the final snapshot.
 *  - After the final snapshot the subtask is finished but stays (RUNNING) until the final notify:
 *    the coordinator counts its final snapshot for every later checkpoint it does not snapshot
 *    itself (every one, as triggers and barriers are then ignored), so the first notify of an
 *    id > last_ck (or the final notify) commits everything, the final epoch too
 *    (notify_complete with final = true): Flink's FLIP-147.
 *
 * Threading: the task thread, except uploader_main on the uploader thread, which uploads keyed
 * snapshots and sends ACK / DECLINE through the spec's send callback (thread-safe), reading only
 * task fields that are immutable after start, pushing WEIR_MB_UPLOADED into the mailbox. The
 * uploader's queue is guarded by its mutex, a leaf lock: never held while calling out. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/killpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/task/task_int.h"
#include "state/snapshot.h"
#include "storage/storage.h"

#define COMP "task"

/* ---------------------------------------------------------------------------------------- */
/* ACK / DECLINE and the uploader thread                                                    */
/* ---------------------------------------------------------------------------------------- */

/* One asynchronous part of a snapshot (or just an ACK that must follow earlier ones). */
typedef struct up_job {
    struct up_job *next;
    weir_state_snapshot_t *snap; /* NULL: nothing to upload */
    uint64_t id;                 /* 0 for the final snapshot */
    bool final;
    char *target; /* a savepoint's directory (self-contained upload); NULL for a checkpoint */
    uint8_t *op_state;
    size_t op_len;
    uint64_t alignment_ns, sync_ns;
} up_job_t;

struct weir_uploader {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    up_job_t *head, *tail;
    bool stop; /* leave once the queue is empty */
    bool drop; /* do not upload what is still queued (canceled / failed) */
    /* uploader thread only: the storage of the checkpoint directory and of the latest savepoint
     * target, opened on first use (no I/O) and closed once the thread joined */
    weir_storage_t *ck_st, *sp_st;
};

/* Uploader thread: the storage rooted at @p uri (the checkpoint directory, which never
 * changes, or a savepoint target), cached in *@p slot; a savepoint slot is reopened when the
 * target differs (opening does no I/O). NULL + err. */
static weir_storage_t *upload_storage(weir_task_t *t, weir_storage_t **slot, bool savepoint,
                                      const char *uri, char *err, size_t errlen) {
    if (*slot && savepoint && strcmp(weir_storage_uri(*slot), uri) != 0)
        weir_storage_close(slot);
    if (!*slot)
        *slot = weir_storage_open(t->storage_env, uri, err, errlen);
    return *slot;
}

static void up_job_free(up_job_t *j) {
    weir_state_snapshot_free(&j->snap);
    free(j->target);
    free(j->op_state);
    free(j);
}

/* Any thread: the fields used are immutable after start. */
static void send_ack(weir_task_t *t, uint64_t id, bool final, const uint8_t *op, size_t op_len,
                     const char *handle, uint64_t state_size, uint64_t uploaded,
                     uint64_t alignment_ns, uint64_t sync_ns, uint64_t async_ns) {
    weir_killpoint_hit(t->kp, "barrier-before-ack");
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = WEIR_MSG_ACK_CHECKPOINT;
    memcpy(m.job_id, t->job_id, sizeof m.job_id);
    m.attempt = t->attempt;
    m.vertex = t->vertex;
    m.subtask = t->subtask;
    m.checkpoint_id = id;
    m.final = final;
    m.op_state = (uint8_t *)op;
    m.op_state_len = op_len;
    m.keyed_handle = (char *)handle;
    m.state_size = state_size;
    m.uploaded_size = uploaded;
    m.alignment_ns = alignment_ns;
    m.sync_ns = sync_ns;
    m.async_ns = async_ns;
    WEIR_DEBUG(COMP, "job %s vertex %u subtask %u: ack checkpoint %" PRIu64 "%s", t->job_id,
               t->vertex, t->subtask, id, final ? " (final)" : "");
    if (t->send)
        t->send(t->send_arg, &m);
}

static void send_decline(weir_task_t *t, uint64_t id, const char *why) {
    WEIR_WARN(COMP, "job %s vertex %u subtask %u: declining checkpoint %" PRIu64 ": %s", t->job_id,
              t->vertex, t->subtask, id, why);
    weir_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = WEIR_MSG_DECLINE_CHECKPOINT;
    memcpy(m.job_id, t->job_id, sizeof m.job_id);
    m.attempt = t->attempt;
    m.vertex = t->vertex;
    m.subtask = t->subtask;
    m.checkpoint_id = id;
    m.error = (char *)why;
    if (t->send)
        t->send(t->send_arg, &m);
}

/* Uploader thread: uploads queued snapshots in order and sends their ACKs (or DECLINEs). */
static void *uploader_main(void *arg) {
    weir_task_t *t = arg;
    struct weir_uploader *u = t->up;
    char task_name[64];
    weir_fmt(task_name, sizeof task_name, "%u-%u", t->vertex, t->subtask);
    for (;;) {
        pthread_mutex_lock(&u->mu);
        while (!u->head && !u->stop)
            pthread_cond_wait(&u->cv, &u->mu);
        up_job_t *j = u->head;
        if (j) {
            u->head = j->next;
            if (!u->head)
                u->tail = NULL;
        }
        bool drop = u->drop;
        pthread_mutex_unlock(&u->mu);
        if (!j)
            break;
        if (drop) {
            up_job_free(j);
            continue;
        }
        int64_t t0 = weir_now_ns();
        char err[384] = "";
        char *handle = NULL;
        uint64_t state_size = 0, uploaded = 0;
        int rc = 0;
        if (j->snap) {
            /* a savepoint: every file into <target>/<vertex>-<subtask>/, registered nowhere (its
             * SSTs are never confirmed: a checkpoint never references a savepoint's files) */
            const char *dir = j->target ? j->target : t->ck_dir;
            weir_upload_mode_t mode = j->target        ? WEIR_UPLOAD_SELF_CONTAINED
                                      : t->incremental ? WEIR_UPLOAD_INCREMENTAL
                                                       : WEIR_UPLOAD_FULL;
            weir_storage_t *st = NULL;
            if (!dir) {
                weir_fmt(err, sizeof err, "no checkpoint directory (state.checkpoints.dir)");
                rc = WEIR_ECONFIG;
            } else if (!(st = upload_storage(t, j->target ? &u->sp_st : &u->ck_st,
                                             j->target != NULL, dir, err, sizeof err))) {
                rc = WEIR_ECONFIG;
            } else {
                rc = weir_state_snapshot_upload(j->snap, st, task_name, mode, &handle, &state_size,
                                                &uploaded, err, sizeof err);
            }
            weir_state_snapshot_free(&j->snap);
        }
        uint64_t async_ns = (uint64_t)(weir_now_ns() - t0);
        if (rc < 0) {
            char why[512];
            weir_fmt(why, sizeof why, "keyed state upload: %s", err[0] ? err : weir_strerror(rc));
            if (j->final) { /* the job cannot finish without it: fail the task */
                weir_mbmsg_t msg = {.type = WEIR_MB_UPLOADED, .id = 0, .arg = weir_xstrdup(why)};
                weir_mailbox_push(t->mb, &msg);
            } else {
                send_decline(t, j->id, why);
            }
        } else {
            send_ack(t, j->id, j->final, j->op_state, j->op_len, handle, state_size + j->op_len,
                     uploaded, j->alignment_ns, j->sync_ns, async_ns);
        }
        free(handle);
        up_job_free(j);
    }
    return NULL;
}

static int uploader_start(weir_task_t *t) {
    struct weir_uploader *u = weir_xcalloc(1, sizeof *u);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    t->up = u;
    if (pthread_create(&u->thread, NULL, uploader_main, t) != 0) {
        pthread_cond_destroy(&u->cv);
        pthread_mutex_destroy(&u->mu);
        free(u);
        t->up = NULL;
        return WEIR_EIO;
    }
    char tname[16];
    snprintf(tname, sizeof tname, "weir-up-%u.%u", t->vertex, t->subtask);
    pthread_setname_np(u->thread, tname);
    return 0;
}

/* Waits for the upload in flight (and, unless @p drop, every queued one), joins the thread. */
void weir__task_uploader_stop(weir_task_t *t, bool drop) {
    struct weir_uploader *u = t->up;
    if (!u)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = true;
    u->drop = drop;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    weir_storage_close(&u->ck_st);
    weir_storage_close(&u->sp_st);
    while (u->head) {
        up_job_t *j = u->head;
        u->head = j->next;
        up_job_free(j);
    }
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    free(u);
    t->up = NULL;
}

static void uploader_push(weir_task_t *t, up_job_t *j) {
    struct weir_uploader *u = t->up;
    pthread_mutex_lock(&u->mu);
    if (u->tail)
        u->tail->next = j;
    else
        u->head = j;
    u->tail = j;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

/* ---------------------------------------------------------------------------------------- */
/* Snapshots                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* True when [data, data+len) holds exactly one msgpack object. */
static bool one_object(const char *data, size_t len) {
    if (len == 0)
        return false;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, data, len, &off);
    msgpack_unpacked_destroy(&u);
    return r == MSGPACK_UNPACK_SUCCESS && off == len;
}

/* Savepoints this subtask snapshotted, until a notified checkpoint passes them: a notify of one
 * of their ids (the job manager sends none, but the stop's final one) never confirms keyed state.
 * confirm(n) turns the pending uploads of every checkpoint <= n into confirmed ones; done for a
 * savepoint it would confirm the uploads of an earlier checkpoint that never completed, whose
 * shared files the job manager's garbage collection may delete. */
static void sp_remember(weir_task_t *t, uint64_t id) {
    if (weir_array_grow((void **)&t->sp_ids, &t->cap_sp_ids, t->n_sp_ids + 1, sizeof *t->sp_ids,
                        4) < 0)
        abort();
    t->sp_ids[t->n_sp_ids++] = id;
}

static bool sp_is(const weir_task_t *t, uint64_t id) {
    for (size_t i = 0; i < t->n_sp_ids; i++)
        if (t->sp_ids[i] == id)
            return true;
    return false;
}

/* A checkpoint @p id was notified: savepoints below it are never notified. */
static void sp_forget_upto(weir_task_t *t, uint64_t id) {
    size_t k = 0;
    for (size_t i = 0; i < t->n_sp_ids; i++)
        if (t->sp_ids[i] > id)
            t->sp_ids[k++] = t->sp_ids[i];
    t->n_sp_ids = k;
}

/* Snapshot of barrier @p b (@p final: the final snapshot, acked with id 0, no barrier).
 * Synchronous part here (operator snapshots into one msgpack array, keyed snapshot), then the
 * barrier goes downstream with its kind and target, then the asynchronous part (upload + ACK) on
 * the uploader thread, or the ACK right away for a chain without keyed state. A savepoint or a
 * stop takes the same hooks (2PC sinks pre-commit); only its keyed upload differs (into its
 * target, self-contained). */
static void take_checkpoint(weir_task_t *t, const weir_task_barrier_t *b, uint64_t alignment_ns,
                            bool final) {
    int64_t t0 = weir_now_ns();
    uint64_t id = b->id;
    uint64_t hook_id = final ? WEIR_CHECKPOINT_ID_FINAL : id;
    bool savepoint = !final && b->kind != WEIR_CK_CHECKPOINT;
    char why[512] = "";
    if (savepoint) {
        sp_remember(t, id);
        if (b->kind == WEIR_CK_STOP)
            t->stop_ck = id;
        if (!b->target_len)
            weir_fmt(why, sizeof why,
                     "savepoint %" PRIu64 " has no target directory (of at most %u bytes)", id,
                     WEIR_BARRIER_TARGET_MAX);
    }
    t->ckbuf.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->ckbuf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, t->n_ops);
    for (uint32_t i = 0; i < t->n_ops; i++) {
        weir_operator_t *op = &t->ops[i];
        if (!op->vt->snapshot) {
            msgpack_pack_nil(&pk);
            continue;
        }
        size_t before = t->ckbuf.size;
        t->now_ns = weir_now_ns();
        int rc = op->vt->snapshot(op, &t->ctxs[i], hook_id, &pk);
        if (rc >= 0 && !t->stop && !one_object(t->ckbuf.data + before, t->ckbuf.size - before))
            weir__task_fail(t, "%s: snapshot must pack exactly one msgpack object", op->node->name);
        else if (rc < 0 && !t->failed)
            weir__task_fail(t, "%s: snapshot failed: %s", op->node->name, weir_strerror(rc));
        if (t->stop) {
            if (t->failed)
                send_decline(t, id, t->errmsg);
            return;
        }
    }
    weir_state_snapshot_t *snap = NULL;
    if (t->sb && !final && !why[0]) {
        char err[384] = "";
        snap = weir_state_snapshot_take(t->sb, id, err, sizeof err);
        if (!snap)
            weir_fmt(why, sizeof why, "keyed state snapshot: %s", err[0] ? err : "failed");
    }
    uint64_t sync_ns = (uint64_t)(weir_now_ns() - t0);
    if (!final) /* also when declined: downstream must not stay blocked */
        weir__task_write_event(t, b);
    if (why[0]) {
        send_decline(t, id, why);
        return;
    }
    if (t->stop) {
        weir_state_snapshot_free(&snap);
        return;
    }
    uint64_t ack_id = final ? 0 : id;
    if (t->up) { /* keep ACKs in order behind earlier uploads */
        up_job_t *j = weir_xcalloc(1, sizeof *j);
        j->snap = snap;
        j->id = ack_id;
        j->final = final;
        j->target = savepoint ? strndup(b->target, b->target_len) : NULL;
        if (savepoint && !j->target)
            abort();
        j->op_len = t->ckbuf.size;
        j->op_state = malloc(j->op_len ? j->op_len : 1);
        if (!j->op_state)
            abort();
        memcpy(j->op_state, t->ckbuf.data, j->op_len);
        j->alignment_ns = alignment_ns;
        j->sync_ns = sync_ns;
        uploader_push(t, j);
    } else {
        weir_state_snapshot_free(&snap);
        send_ack(t, ack_id, final, (const uint8_t *)t->ckbuf.data, t->ckbuf.size, NULL,
                 t->ckbuf.size, 0, alignment_ns, sync_ns, 0);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Alignment                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Unblocks every channel (granting withheld credits) and forgets which barriers arrived. */
static void release_channels(weir_task_t *t) {
    for (uint32_t i = 0; i < t->n_ins; i++) {
        weir_task_in_t *in = &t->ins[i];
        in->arrived = false;
        if (in->ch.blocked) {
            uint32_t n = weir_inchan_unblock(&in->ch);
            if (n && !t->stop)
                weir_dataplane_grant(t->dp, &in->ch.key, n);
        }
    }
    t->n_arrived = 0;
    t->align_id = 0;
    t->align_kind = WEIR_CK_CHECKPOINT;
    free(t->align_target);
    t->align_target = NULL;
}

static void maybe_complete_alignment(weir_task_t *t) {
    if (!t->align_id || t->n_arrived < t->n_ins)
        return;
    /* forwarded as it came: same id, trigger time, kind and target */
    weir_task_barrier_t b = {.id = t->align_id,
                             .ts = t->align_ts,
                             .kind = t->align_kind,
                             .target = t->align_target,
                             .target_len =
                                 (uint16_t)(t->align_target ? strlen(t->align_target) : 0)};
    uint64_t alignment_ns = (uint64_t)(weir_now_ns() - t->align_start_ns);
    t->last_ck = b.id;
    take_checkpoint(t, &b, alignment_ns, false);
    release_channels(t);
}

/* True when @p b names the same kind and target as the alignment in progress. */
static bool same_barrier(const weir_task_t *t, const weir_task_barrier_t *b) {
    size_t len = t->align_target ? strlen(t->align_target) : 0;
    return b->kind == t->align_kind && b->target_len == len &&
           (!len || !memcmp(b->target, t->align_target, len));
}

void weir__task_on_barrier(weir_task_t *t, uint32_t idx, const weir_task_barrier_t *b) {
    uint64_t id = b->id;
    if (t->ck_mode == WEIR_CHECKPOINT_NONE || t->final_sent || id <= t->last_ck ||
        (t->align_id && id < t->align_id))
        return; /* stale (an abandoned or older checkpoint) */
    if (id > t->align_id) {
        if (t->align_id) {
            WEIR_INFO(COMP,
                      "job %s vertex %u subtask %u: barrier %" PRIu64 " abandons the alignment of "
                      "checkpoint %" PRIu64,
                      t->job_id, t->vertex, t->subtask, id, t->align_id);
            release_channels(t);
        }
        t->align_id = id;
        t->align_ts = b->ts;
        t->align_kind = b->kind;
        t->align_target = b->target_len ? strndup(b->target, b->target_len) : NULL;
        if (b->target_len && !t->align_target)
            abort();
        t->align_start_ns = weir_now_ns();
        t->n_arrived = 0;
        for (uint32_t i = 0; i < t->n_ins; i++) {
            t->ins[i].arrived = t->ins[i].ch.ended;
            t->n_arrived += t->ins[i].ch.ended ? 1 : 0;
        }
    } else if (!same_barrier(t, b)) { /* one trigger per id: cannot happen */
        WEIR_WARN(COMP,
                  "job %s vertex %u subtask %u: barrier %" PRIu64 " on input channel %u has "
                  "another kind or target than on the others: the first one is kept",
                  t->job_id, t->vertex, t->subtask, id, idx);
    }
    weir_task_in_t *in = &t->ins[idx];
    if (in->arrived)
        return;
    in->arrived = true;
    t->n_arrived++;
    if (t->n_arrived < t->n_ins) {
        if (t->ck_mode == WEIR_CHECKPOINT_EXACTLY_ONCE)
            weir_inchan_block(&in->ch);
        return;
    }
    maybe_complete_alignment(t);
}

void weir__task_on_end(weir_task_t *t, uint32_t idx) {
    weir_task_in_t *in = &t->ins[idx];
    if (in->ch.ended)
        return;
    in->ch.ended = true;
    t->n_ended++;
    if (t->align_id && !in->arrived) { /* an ended channel counts as arrived */
        in->arrived = true;
        t->n_arrived++;
        maybe_complete_alignment(t);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Triggers (sources), notifications, the final snapshot                                    */
/* ---------------------------------------------------------------------------------------- */

void weir__task_on_trigger(weir_task_t *t, const weir_task_barrier_t *b) {
    uint64_t id = b->id;
    if (!t->is_source) {
        WEIR_WARN(COMP,
                  "job %s vertex %u subtask %u: trigger of checkpoint %" PRIu64
                  " ignored (not a source)",
                  t->job_id, t->vertex, t->subtask, id);
        return;
    }
    if (t->ck_mode == WEIR_CHECKPOINT_NONE || t->final_sent || id <= t->last_ck)
        return;
    if ((unsigned)b->kind > WEIR_CK_STOP) {
        char why[128];
        weir_fmt(why, sizeof why, "unknown checkpoint kind %u (0, 1 or 2)", (unsigned)b->kind);
        send_decline(t, id, why);
        return;
    }
    t->last_ck = id;
    take_checkpoint(t, b, 0, false);
    if (b->kind == WEIR_CK_STOP && !t->stop && !t->suspended) {
        /* stop-with-savepoint: the barrier was the last thing this source emits */
        t->suspended = true;
        WEIR_INFO(COMP,
                  "job %s vertex %u subtask %u: stop-with-savepoint %" PRIu64
                  ": source suspended, waiting for its completion",
                  t->job_id, t->vertex, t->subtask, id);
    }
}

/* A notify of checkpoint n after the final snapshot: n holds that snapshot iff this subtask did
 * not snapshot n itself (n > last_ck: the coordinator counts a subtask's final snapshot for every
 * checkpoint it did not ack; after the final snapshot triggers and barriers are ignored, so
 * last_ck no longer moves). Then everything is committed, the final epoch too.
 * The final notify of a stop-with-savepoint n this subtask snapshotted (it has not finished:
 * nothing reached it after barrier n, since every source stopped there) commits everything
 * (notify_complete with final = true: what savepoint n pre-committed and anything pending
 * before) and ends the subtask without end of input and without a final snapshot.
 * Keyed state is confirmed only for checkpoints: never for a savepoint (sp_is), nor for a
 * checkpoint that holds the final snapshot. */
void weir__task_on_notify(weir_task_t *t, uint64_t id, bool final) {
    if (t->ck_mode == WEIR_CHECKPOINT_NONE)
        return;
    bool stop_final = final && !t->final_sent && t->stop_ck && id >= t->stop_ck;
    if (final && !t->final_sent && !stop_final) {
        WEIR_WARN(COMP,
                  "job %s vertex %u subtask %u: final notify %" PRIu64
                  " before end of input: ignored",
                  t->job_id, t->vertex, t->subtask, id);
        return;
    }
    bool savepoint = sp_is(t, id);
    bool holds_final = stop_final || (t->final_sent && (final || id > t->last_ck));
    if (holds_final && t->final_committed && !final)
        return; /* everything is committed already */
    weir_killpoint_hit(t->kp, "notify-before-commit");
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        if (!t->ops[i].vt->notify_complete)
            continue;
        t->now_ns = weir_now_ns();
        t->ops[i].vt->notify_complete(&t->ops[i], &t->ctxs[i], id, holds_final);
    }
    if (t->sb && !holds_final && !savepoint)
        weir_state_snapshot_confirm(t->sb, id);
    if (!savepoint)
        sp_forget_upto(t, id);
    if (holds_final && !t->stop) {
        if (stop_final)
            WEIR_INFO(COMP,
                      "job %s vertex %u subtask %u: stop-with-savepoint %" PRIu64
                      " complete: everything committed, finishing without end of input",
                      t->job_id, t->vertex, t->subtask, id);
        else if (!t->final_committed)
            WEIR_DEBUG(COMP,
                       "job %s vertex %u subtask %u: checkpoint %" PRIu64
                       " holds the final snapshot: final epoch committed",
                       t->job_id, t->vertex, t->subtask, id);
        t->final_committed = true;
    }
    if (final)
        t->final_notified = true;
}

void weir__task_final_snapshot(weir_task_t *t) {
    if (t->align_id) /* cannot happen: every channel ended, so every barrier "arrived" */
        release_channels(t);
    weir_task_barrier_t b = {.id = 0, .ts = weir_wall_ms(), .kind = WEIR_CK_CHECKPOINT};
    take_checkpoint(t, &b, 0, true);
    t->final_sent = true;
}

/* ---------------------------------------------------------------------------------------- */
/* State backend: open (fresh or restored), operator restore, removal                       */
/* ---------------------------------------------------------------------------------------- */

void weir__task_open_state(weir_task_t *t) {
    char errstr[384] = "";
    char path[4096];
    weir_fmt(path, sizeof path, "%s/state", t->state_dir);
    weir_state_opts_t so = {.path = path,
                            .max_parallelism = t->graph->max_parallelism,
                            .cache_bytes = t->state_cache_bytes,
                            .memory = t->state_memory};
    if (weir_mkdirs(t->state_dir) < 0) {
        weir__task_fail(t, "cannot create state directory %s", t->state_dir);
        return;
    }
    if (!t->storage_env && (t->restore_handle || t->ck_mode != WEIR_CHECKPOINT_NONE)) {
        /* no task manager env (tests): defaults, POSIX locations only */
        if (!(t->own_env = weir_storage_env_new(NULL, errstr, sizeof errstr))) {
            weir__task_fail(t, "checkpoint storage: %s", errstr[0] ? errstr : "no environment");
            return;
        }
        t->storage_env = t->own_env;
    }
    if (t->restore_id && t->restore_handle) {
        /* the keyed restore document names every source (its base and its handle): the job's
         * own checkpoint, a retained one or a savepoint, at this or another parallelism; shared
         * SSTs go through the task manager's local recovery cache of the job */
        char owner[64];
        weir_fmt(owner, sizeof owner, "%u-%u", t->vertex, t->subtask);
        weir_state_fetch_t fetch = {
            .env = t->storage_env, .cache_dir = t->recovery_dir, .owner = owner};
        t->sb = weir_state_restore_plan(&so, t->decls, t->n_decls, &fetch, t->restore_handle,
                                        errstr, sizeof errstr);
        if (!t->sb)
            weir__task_fail(t, "restoring keyed state of checkpoint %" PRIu64 ": %s", t->restore_id,
                            errstr[0] ? errstr : "failed");
    } else {
        t->sb = weir_state_open(&so, t->decls, t->n_decls, errstr, sizeof errstr);
        if (!t->sb)
            weir__task_fail(t, "state backend: %s", errstr[0] ? errstr : "open failed");
    }
    for (uint32_t i = 0; i < t->n_ops; i++)
        if (t->ctxs[i].n_states)
            t->ctxs[i].sb = t->sb;
    if (t->sb && t->ck_mode != WEIR_CHECKPOINT_NONE && uploader_start(t) < 0)
        weir__task_fail(t, "cannot start the snapshot uploader thread");
}

/* One element of the operator-state bundle: nil, or [old_parallelism, [[old_subtask, state],
 * ...]] with at least one pair and old subtasks ascending below old_parallelism. Fills @p r
 * with the pairs whose state is not nil (r->n = 0: nothing to restore); @p subs and @p states
 * have room for every pair. @returns false when malformed. */
static bool bundle_element(const msgpack_object *e, weir_op_restore_t *r, uint32_t *subs,
                           msgpack_object *states) {
    r->n = 0;
    if (e->type == MSGPACK_OBJECT_NIL)
        return true;
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
        return false;
    const msgpack_object *par = &e->via.array.ptr[0], *pairs = &e->via.array.ptr[1];
    if (par->type != MSGPACK_OBJECT_POSITIVE_INTEGER || par->via.u64 == 0 ||
        par->via.u64 > UINT32_MAX || pairs->type != MSGPACK_OBJECT_ARRAY ||
        pairs->via.array.size == 0)
        return false;
    r->old_parallelism = (uint32_t)par->via.u64;
    int64_t prev = -1;
    for (uint32_t i = 0; i < pairs->via.array.size; i++) {
        const msgpack_object *p = &pairs->via.array.ptr[i];
        if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
            p->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            p->via.array.ptr[0].via.u64 >= r->old_parallelism ||
            (int64_t)p->via.array.ptr[0].via.u64 <= prev)
            return false;
        prev = (int64_t)p->via.array.ptr[0].via.u64;
        if (p->via.array.ptr[1].type == MSGPACK_OBJECT_NIL)
            continue;
        subs[r->n] = (uint32_t)prev;
        states[r->n] = p->via.array.ptr[1];
        r->n++;
    }
    return true;
}

/* Starting from a checkpoint or savepoint: parses the operator-state bundle (the DEPLOY field
 * restore_op_state: one element per chain operator, head first; CONTRACT section 3) and hands
 * every operator with a non-nil state its old subtasks' states before open. Operators without
 * state in it are not called (they start fresh in open). */
void weir__task_restore_operators(weir_task_t *t) {
    if (!t->restore_op || !t->restore_op_len)
        return;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack_next(&u, (const char *)t->restore_op, t->restore_op_len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != t->restore_op_len ||
        u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != t->n_ops) {
        weir__task_fail(t,
                        "operator state of checkpoint %" PRIu64 " is not an array of %u "
                        "entries (one per chained operator): the job graph changed or the "
                        "checkpoint is corrupt",
                        t->restore_id, t->n_ops);
        msgpack_unpacked_destroy(&u);
        return;
    }
    const msgpack_object *elems = u.data.via.array.ptr;
    for (uint32_t i = 0; i < t->n_ops && !t->stop; i++) {
        weir_operator_t *op = &t->ops[i];
        const msgpack_object *e = &elems[i];
        uint32_t cap = e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2 &&
                               e->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY
                           ? e->via.array.ptr[1].via.array.size
                           : 0;
        uint32_t *subs = weir_xcalloc(cap ? cap : 1, sizeof *subs);
        msgpack_object *states = weir_xcalloc(cap ? cap : 1, sizeof *states);
        weir_op_restore_t r = {
            .checkpoint_id = t->restore_id, .old_subtask = subs, .states = states};
        if (!bundle_element(e, &r, subs, states)) {
            weir__task_fail(t,
                            "%s: its operator state in checkpoint %" PRIu64 " is malformed "
                            "(expected nil or [old parallelism, [[old subtask, state], ...]] with "
                            "old subtasks ascending below the old parallelism): the checkpoint "
                            "is corrupt",
                            op->node->name, t->restore_id);
        } else if (r.n > 0 && !op->vt->restore) {
            WEIR_WARN(COMP,
                      "%s: checkpoint %" PRIu64 " holds state for it, but it cannot "
                      "restore: ignored",
                      op->node->name, t->restore_id);
        } else if (r.n > 0) {
            int rc = op->vt->restore(op, &t->ctxs[i], &r);
            if (rc < 0 && !t->failed)
                weir__task_fail(t, "%s: restore from checkpoint %" PRIu64 " failed: %s",
                                op->node->name, t->restore_id, weir_strerror(rc));
        }
        free(subs);
        free(states);
    }
    msgpack_unpacked_destroy(&u);
}

/* Removes the state directory and, when empty, its attempt and job parents. */
void weir__task_remove_state_dir(weir_task_t *t) {
    if (!t->state_dir)
        return;
    weir_rmtree(t->state_dir);
    char dir[4096];
    weir_fmt(dir, sizeof dir, "%s/%s/%u", t->work_dir, t->job_id, t->attempt);
    (void)rmdir(dir);
    weir_fmt(dir, sizeof dir, "%s/%s", t->work_dir, t->job_id);
    (void)rmdir(dir);
}
