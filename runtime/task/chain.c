/* Building and freeing a subtask, and the task manager's side of it: weir_task_start copies the
 * spec, builds the chain (one operator and one weir_ctx_t per node, the chain's state
 * declarations), the input gate and the output writer (partitioners and channels), then starts
 * the task thread; weir_task_cancel / trigger / notify push mailbox messages; weir_task_destroy
 * cancels a live task, joins it and frees it (task_free); the getters, weir_task_get_metrics
 * and the per-operator weir_task_get_operator_metrics.
 *
 * Invariants:
 *  - The task owns spec->graph from weir_task_start on, also on failure. Identity, placement,
 *    checkpoint settings and the shape of the chain and the gates (which operators, which
 *    channels) are fixed once the thread runs; their contents belong to the task thread.
 *  - A source is the head of its chain. Connector kinds are built by spec->create_connector (the
 *    runtime knows no connector), every other kind by weir_operator_create_builtin.
 *  - A node's state i is column state_base + i of the chain's one declaration list; with more
 *    than one stateful node the columns are named "<uid>/<name>".
 *  - Input indices are dense in (in-edge order, source subtask) order; an out-edge owns a
 *    contiguous run of outs[] (FORWARD: one channel, dst = own index).
 *  - task_free frees a task at any point of construction, or after its thread was joined.
 *
 * Threading: the task manager thread; the getters and the metrics: any thread (relaxed atomics
 * with a single writer, a sequence lock for the busy/idle/backpressured clock, immutable fields,
 * the mailbox's own lock for queued input buffers). Cancel / trigger / notify only push to the
 * mailbox and return at once (a trigger's target is copied into the message, which owns it). */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/dataplane/dataplane.h"
#include "runtime/task/task_int.h"
#include "storage/storage.h"

#define ZONE_CHUNK (64u * 1024u)

/* ---------------------------------------------------------------------------------------- */
/* Building the chain and the gates                                                         */
/* ---------------------------------------------------------------------------------------- */

static bool is_connector_kind(weir_op_kind_t k) {
    switch (k) {
    case WEIR_OP_SOURCE_DATAGEN:
    case WEIR_OP_SOURCE_FILE:
    case WEIR_OP_SOURCE_GENERATOR:
    case WEIR_OP_SINK_FILE:
    case WEIR_OP_SINK_PRINT:
    case WEIR_OP_SINK_BLACKHOLE:
    case WEIR_OP_SOURCE_KAFKA:
    case WEIR_OP_SINK_KAFKA:
        return true;
    default:
        return false;
    }
}

static int build_chain(weir_task_t *t, char *errstr, size_t errlen) {
    const weir_vertex_t *vx = t->vx;
    weir_job_t *g = t->graph;
    t->n_ops = vx->n_nodes;
    if (!t->n_ops) {
        weir_fmt(errstr, errlen, "vertex %u has no operators", t->vertex);
        return WEIR_EINVAL;
    }
    t->ops = weir_xcalloc(t->n_ops, sizeof *t->ops);
    t->ctxs = weir_xcalloc(t->n_ops, sizeof *t->ctxs);
    t->op_created = weir_xcalloc(t->n_ops, sizeof *t->op_created);
    for (uint32_t i = 0; i < t->n_ops; i++) {
        weir_ctx_t *c = &t->ctxs[i];
        msgpack_sbuffer_init(&c->sbuf);
        msgpack_packer_init(&c->pk, &c->sbuf, msgpack_sbuffer_write);
        if (!msgpack_zone_init(&c->zone, ZONE_CHUNK))
            abort();
    }
    uint32_t n_decls = 0, n_stateful = 0;
    for (uint32_t i = 0; i < t->n_ops; i++) {
        const weir_node_t *node = &g->nodes[vx->nodes[i]];
        n_decls += node->n_states;
        n_stateful += node->n_states ? 1 : 0;
    }
    if (n_decls) {
        t->decls = weir_xcalloc(n_decls, sizeof *t->decls);
        char sd[4096];
        weir_fmt(sd, sizeof sd, "%s/%s/%u/%u-%u", t->work_dir, t->job_id, t->attempt, t->vertex,
                 t->subtask);
        t->state_dir = weir_xstrdup(sd);
    }

    for (uint32_t i = 0; i < t->n_ops; i++) {
        const weir_node_t *node = &g->nodes[vx->nodes[i]];
        weir_operator_t *op = &t->ops[i];
        weir_ctx_t *c = &t->ctxs[i];
        op->node = node;
        op->subtask = t->subtask;
        op->parallelism = vx->parallelism;
        c->task = t;
        c->pos = i;
        c->op = op;
        c->next = i + 1 < t->n_ops ? &t->ctxs[i + 1] : NULL;
        c->next_tag = c->next ? g->nodes[vx->nodes[i + 1]].input_tag : 0;
        c->keyed = node->keyed;
        if (weir_op_is_source(node->kind) && i != 0) {
            weir_fmt(errstr, errlen, "source %s is not the head of its chain", node->name);
            return WEIR_EINVAL;
        }
        char err[256] = "";
        int rc = !is_connector_kind(node->kind) ? weir_operator_create_builtin(op, err, sizeof err)
                 : t->create_connector          ? t->create_connector(op, err, sizeof err)
                                                : WEIR_EINVAL;
        if (rc < 0 || !op->vt) {
            weir_fmt(errstr, errlen, "operator %s (%s): %s", node->name,
                     weir_op_kind_name(node->kind), err[0] ? err : weir_strerror(rc));
            return rc < 0 ? rc : WEIR_EINVAL;
        }
        t->op_created[i] = true;
        if (i == 0 && weir_op_is_source(node->kind)) {
            t->is_source = true;
            if (!op->vt->run) {
                weir_fmt(errstr, errlen, "source %s has no run function", node->name);
                return WEIR_EINVAL;
            }
        } else if (!op->vt->process) {
            weir_fmt(errstr, errlen, "operator %s has no process function", node->name);
            return WEIR_EINVAL;
        }
        /* states: (node, index) -> global column */
        c->state_base = t->n_decls;
        c->n_states = node->n_states;
        for (uint32_t s = 0; s < node->n_states; s++) {
            weir_state_decl_t *d = &t->decls[t->n_decls++];
            *d = node->states[s];
            if (n_stateful > 1) {
                char nm[512];
                weir_fmt(nm, sizeof nm, "%s/%s", node->uid ? node->uid : node->name,
                         node->states[s].name);
                d->name = weir_xstrdup(nm);
            } else {
                d->name = weir_xstrdup(node->states[s].name);
            }
            if (d->kind == WEIR_STATE_REDUCING && !d->reduce && node->kind == WEIR_OP_REDUCE &&
                s == 0) {
                d->reduce = (weir_reduce_fn)node->fn;
                d->reduce_udata = node->udata;
            }
            if (d->kind == WEIR_STATE_REDUCING && !d->reduce) {
                weir_fmt(errstr, errlen, "reducing state %s of %s has no reduce function",
                         node->states[s].name, node->name);
                return WEIR_EINVAL;
            }
        }
    }
    return 0;
}

static int build_gates(weir_task_t *t, char *errstr, size_t errlen) {
    weir_job_t *g = t->graph;
    const weir_vertex_t *vx = t->vx;
    const char *self = weir_dataplane_address(t->dp);
    int rc;

    /* input gate */
    uint32_t n = 0;
    for (uint32_t k = 0; k < vx->n_in; k++) {
        const weir_edge_t *e = &g->edges[vx->in_edges[k]];
        n += e->part == WEIR_PART_FORWARD ? 1 : g->vertices[e->source].parallelism;
    }
    t->ins = weir_xcalloc(n, sizeof *t->ins);
    for (uint32_t k = 0; k < vx->n_in; k++) {
        const weir_edge_t *e = &g->edges[vx->in_edges[k]];
        const weir_vertex_t *u = &g->vertices[e->source];
        bool fwd = e->part == WEIR_PART_FORWARD;
        if (fwd && u->parallelism != vx->parallelism) {
            weir_fmt(errstr, errlen, "forward edge %u joins parallelism %u to %u", e->id,
                     u->parallelism, vx->parallelism);
            return WEIR_EINVAL;
        }
        uint32_t lo = fwd ? t->subtask : 0, hi = fwd ? t->subtask + 1 : u->parallelism;
        for (uint32_t src = lo; src < hi; src++) {
            weir_task_in_t *in = &t->ins[t->n_ins];
            weir_chankey_t key = {.attempt = t->attempt,
                                  .edge = e->id,
                                  .src = (uint16_t)src,
                                  .dst = (uint16_t)t->subtask};
            memcpy(key.job, t->job_bin, 16);
            const char *addr = t->placement[e->source][src];
            in->remote = strcmp(addr, self) != 0;
            in->edge = e->id;
            in->src = src;
            in->input = e->input;
            weir_inchan_init(&in->ch, &key, t->credits_per_channel);
            rc = weir_dataplane_open_input(t->dp, &key, addr, t->mb, t->n_ins,
                                           t->credits_per_channel);
            if (rc < 0) {
                weir_fmt(errstr, errlen, "cannot open input channel (edge %u from %s): %s", e->id,
                         addr, weir_strerror(rc));
                return rc;
            }
            t->n_ins++;
        }
    }
    if (!t->is_source && t->n_ins == 0) {
        weir_fmt(errstr, errlen, "vertex %s has neither a source nor an input", vx->name);
        return WEIR_EINVAL;
    }

    /* output writer */
    n = 0;
    for (uint32_t k = 0; k < vx->n_out; k++) {
        const weir_edge_t *e = &g->edges[vx->out_edges[k]];
        n += e->part == WEIR_PART_FORWARD ? 1 : g->vertices[e->target].parallelism;
    }
    t->outs = weir_xcalloc(n, sizeof *t->outs);
    t->oedges = weir_xcalloc(vx->n_out, sizeof *t->oedges);
    t->keybuf = weir_xcalloc(WEIR_MAX_KEY_LEN, 1);
    for (uint32_t k = 0; k < vx->n_out; k++) {
        const weir_edge_t *e = &g->edges[vx->out_edges[k]];
        const weir_vertex_t *w = &g->vertices[e->target];
        weir_task_oedge_t *oe = &t->oedges[t->n_oedges++];
        bool fwd = e->part == WEIR_PART_FORWARD;
        if (fwd && w->parallelism != vx->parallelism) {
            weir_fmt(errstr, errlen, "forward edge %u joins parallelism %u to %u", e->id,
                     vx->parallelism, w->parallelism);
            return WEIR_EINVAL;
        }
        oe->kind = e->part;
        oe->tag = e->source_tag;
        oe->pos = t->n_ops - 1;
        for (uint32_t k = 0; k < t->n_ops; k++)
            if (vx->nodes[k] == e->source_node)
                oe->pos = k;
        t->ctxs[oe->pos].has_out = true;
        oe->first = t->n_outs;
        oe->n_chans = fwd ? 1 : w->parallelism;
        weir_partitioner_init(&oe->part, e->part, w->parallelism, g->max_parallelism, t->subtask);
        const weir_node_t *whead = &g->nodes[w->nodes[0]];
        weir_node_input_t win = weir_node_input(whead, e->input); /* the input it feeds */
        if (e->part == WEIR_PART_HASH && win.has_key_fn) {
            if (!win.key_fn) {
                weir_fmt(errstr, errlen,
                         "key selector of %s is missing (graph not built by "
                         "define())",
                         whead->name);
                return WEIR_EINVAL;
            }
            oe->key_fn = win.key_fn;
            oe->key_udata = win.key_udata;
        }
        for (uint32_t c = 0; c < oe->n_chans; c++) {
            uint32_t dst = fwd ? t->subtask : c;
            weir_task_out_t *o = &t->outs[t->n_outs];
            weir_chankey_t key = {.attempt = t->attempt,
                                  .edge = e->id,
                                  .src = (uint16_t)t->subtask,
                                  .dst = (uint16_t)dst};
            memcpy(key.job, t->job_bin, 16);
            const char *addr = t->placement[e->target][dst];
            o->local = strcmp(addr, self) == 0;
            weir_outchan_init(&o->ch, &key, t->buffer_size);
            t->n_outs++;
            rc = weir_dataplane_open_output(t->dp, &key, addr, t->mb, t->n_outs - 1);
            if (rc < 0) {
                weir_fmt(errstr, errlen, "cannot open output channel (edge %u to %s): %s", e->id,
                         addr, weir_strerror(rc));
                return rc;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Freeing                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void task_free(weir_task_t *t) {
    if (!t)
        return;
    weir__task_uploader_stop(t, true);
    if (t->mb && t->dp)
        weir_dataplane_close_mailbox(t->dp, t->mb);
    for (uint32_t i = 0; t->ops && i < t->n_ops; i++)
        if (t->op_created && t->op_created[i] && t->ops[i].vt && t->ops[i].vt->close)
            t->ops[i].vt->close(&t->ops[i]);
    for (uint32_t i = 0; t->ctxs && i < t->n_ops; i++) {
        msgpack_sbuffer_destroy(&t->ctxs[i].sbuf);
        msgpack_zone_destroy(&t->ctxs[i].zone);
    }
    weir_state_close(&t->sb, true);
    weir__task_remove_state_dir(t);
    for (uint32_t i = 0; t->outs && i < t->n_outs; i++)
        weir_outchan_destroy(&t->outs[i].ch);
    weir__task_drop_messages(t);
    weir_mailbox_destroy(&t->mb);
    for (uint32_t i = 0; t->ins && i < t->n_ins; i++) {
        weir_task_in_t *in = &t->ins[i];
        for (size_t k = 0; k < in->dq_len; k++)
            weir_netbuf_free(&in->dq[(in->dq_head + k) % in->dq_cap].buf);
        free(in->dq);
    }
    msgpack_sbuffer_destroy(&t->ckbuf);
    weir_wm_valve_free(&t->valve);
    if (t->wmgen)
        weir_wm_gen_free(t->wmgen);
    free(t->wmgen);
    free(t->align_target);
    free(t->sp_ids);
    free(t->ck_dir);
    free(t->recovery_dir);
    free(t->restore_op);
    free(t->restore_handle);
    if (t->placement && t->graph) {
        for (uint32_t v = 0; v < t->graph->n_vertices; v++) {
            for (uint32_t s = 0; t->placement[v] && s < t->graph->vertices[v].parallelism; s++)
                free(t->placement[v][s]);
            free(t->placement[v]);
        }
    }
    free(t->placement);
    for (uint32_t i = 0; t->decls && i < t->n_decls; i++)
        free(t->decls[i].name);
    free(t->decls);
    free(t->ops);
    free(t->ctxs);
    free(t->op_created);
    free(t->ins);
    free(t->outs);
    free(t->oedges);
    free(t->keybuf);
    free(t->work_dir);
    free(t->state_dir);
    weir_graph_destroy(&t->graph);
    weir_storage_env_free(&t->own_env); /* after the uploader (its only other user) joined */
    free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Start and destroy                                                                        */
/* ---------------------------------------------------------------------------------------- */

weir_task_t *weir_task_start(weir_task_spec_t *spec, char *errstr, size_t errlen) {
    weir_job_t *g = spec->graph;
    spec->graph = NULL; /* the task owns it from here on, also on failure */
    weir_task_t *t = NULL;
    if (!g || !spec->dataplane || !spec->placement || spec->vertex >= g->n_vertices ||
        spec->subtask >= g->vertices[spec->vertex].parallelism) {
        weir_fmt(errstr, errlen, "bad task spec (vertex %u subtask %u)", spec->vertex,
                 spec->subtask);
        weir_graph_destroy(&g);
        return NULL;
    }
    t = weir_xcalloc(1, sizeof *t);
    t->graph = g;
    memcpy(t->job_id, spec->job_id, sizeof t->job_id);
    t->job_id[32] = 0;
    if (weir_hex_decode(t->job_id, t->job_bin, 16) < 0) {
        weir_fmt(errstr, errlen, "bad job id '%s': expected 32 hex digits", t->job_id);
        goto fail;
    }
    t->attempt = spec->attempt;
    t->vertex = spec->vertex;
    t->subtask = spec->subtask;
    t->vx = &g->vertices[spec->vertex];
    t->dp = spec->dataplane;
    t->work_dir = weir_xstrdup(spec->work_dir ? spec->work_dir : "/tmp");
    t->buffer_size = spec->buffer_size ? spec->buffer_size : 32768;
    t->buffer_timeout_ns = spec->buffer_timeout_ns;
    t->wm = INT64_MIN;
    atomic_store(&t->wm_pub, INT64_MIN);
    atomic_store(&t->m.kafka_lag, -1); /* not a Kafka source (or not known yet) */
    t->wm_interval_ns =
        spec->watermark_interval_ns > 0 ? spec->watermark_interval_ns : 200 * 1000000LL;
    t->credits_per_channel = spec->credits_per_channel ? spec->credits_per_channel : 4;
    t->state_cache_bytes = spec->state_cache_bytes;
    t->state_memory = spec->state_memory;
    t->on_state = spec->on_state;
    t->cb_arg = spec->cb_arg;
    t->ck_mode = spec->checkpoint_mode;
    t->ck_dir = spec->checkpoint_dir ? weir_xstrdup(spec->checkpoint_dir) : NULL;
    t->storage_env = spec->storage_env;
    if (spec->local_recovery_dir && spec->local_recovery_dir[0]) {
        char rd[4096];
        weir_fmt(rd, sizeof rd, "%s/%s", spec->local_recovery_dir, t->job_id);
        t->recovery_dir = weir_xstrdup(rd);
    }
    t->restore_id = spec->restore_checkpoint_id;
    t->last_ck = spec->restore_checkpoint_id; /* ids grow: older barriers are stale */
    if (spec->restore_checkpoint_id && spec->restore_op_state && spec->restore_op_state_len) {
        t->restore_op = malloc(spec->restore_op_state_len);
        if (!t->restore_op)
            abort();
        memcpy(t->restore_op, spec->restore_op_state, spec->restore_op_state_len);
        t->restore_op_len = spec->restore_op_state_len;
    }
    if (spec->restore_checkpoint_id && spec->restore_keyed_handle)
        t->restore_handle = weir_xstrdup(spec->restore_keyed_handle);
    t->incremental = spec->incremental;
    t->kp = spec->killpoint;
    t->lease_from_ns = spec->lease_from_ns;
    t->lease_ns = spec->lease_ns;
    t->send = spec->send;
    t->send_arg = spec->send_arg;
    t->create_connector = spec->create_connector;
    msgpack_sbuffer_init(&t->ckbuf);
    atomic_store(&t->state, (int)WEIR_TASK_DEPLOYING);

    t->placement = weir_xcalloc(g->n_vertices, sizeof *t->placement);
    for (uint32_t v = 0; v < g->n_vertices; v++) {
        uint32_t p = g->vertices[v].parallelism;
        t->placement[v] = weir_xcalloc(p, sizeof *t->placement[v]);
        for (uint32_t s = 0; s < p; s++) {
            const char *a = spec->placement[v] ? spec->placement[v][s] : NULL;
            if (!a) {
                weir_fmt(errstr, errlen, "no placement for subtask %u of vertex %u", s, v);
                goto fail;
            }
            t->placement[v][s] = weir_xstrdup(a);
        }
    }
    t->mb = weir_mailbox_new();
    if (build_chain(t, errstr, errlen) < 0)
        goto fail;
    if (build_gates(t, errstr, errlen) < 0)
        goto fail;
    if (weir_wm_valve_init(&t->valve, t->n_ins) < 0) {
        weir_fmt(errstr, errlen, "out of memory for the watermarks of %u input channels", t->n_ins);
        goto fail;
    }
    const weir_node_t *head = &g->nodes[t->vx->nodes[0]];
    if (t->is_source && head->has_wm) {
        t->wmgen = weir_xcalloc(1, sizeof *t->wmgen);
        weir_wm_gen_init(t->wmgen, head->wm_bound_ms, head->wm_idle_ms, INT64_MIN);
    }
    atomic_store(&t->clk.start_ns, weir_now_ns()); /* busy/idle/backpressured: wall from here */
    if (pthread_create(&t->thread, NULL, weir__task_main, t) != 0) {
        weir_fmt(errstr, errlen, "cannot start the thread of subtask %u of %s", t->subtask,
                 t->vx->name);
        goto fail;
    }
    t->thread_started = true;
    return t;
fail:
    task_free(t);
    return NULL;
}

void weir_task_destroy(weir_task_t **task) {
    if (!task || !*task)
        return;
    weir_task_t *t = *task;
    *task = NULL;
    if (t->thread_started) {
        int s = atomic_load(&t->state);
        if (s != WEIR_TASK_FINISHED && s != WEIR_TASK_FAILED && s != WEIR_TASK_CANCELED)
            weir_task_cancel(t);
        pthread_join(t->thread, NULL);
    }
    task_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Task manager side: messages and getters                                                  */
/* ---------------------------------------------------------------------------------------- */

void weir_task_cancel(weir_task_t *task) {
    if (!task)
        return;
    weir_mbmsg_t msg = {.type = WEIR_MB_CANCEL};
    weir_mailbox_push(task->mb, &msg);
}

void weir_task_trigger(weir_task_t *task, uint64_t checkpoint_id, int64_t timestamp_ms,
                       weir_ck_kind_t kind, const char *target) {
    if (!task)
        return;
    weir_mbmsg_t msg = {.type = WEIR_MB_TRIGGER,
                        .id = checkpoint_id,
                        .ts = timestamp_ms,
                        .n = (uint32_t)kind,
                        .arg = target ? weir_xstrdup(target) : NULL};
    weir_mailbox_push(task->mb, &msg);
}

void weir_task_notify(weir_task_t *task, uint64_t checkpoint_id, bool final) {
    if (!task)
        return;
    weir_mbmsg_t msg = {.type = WEIR_MB_NOTIFY, .id = checkpoint_id, .flag = final};
    weir_mailbox_push(task->mb, &msg);
}

const char *weir_task_job_id(const weir_task_t *task) {
    return task->job_id;
}
uint32_t weir_task_attempt(const weir_task_t *task) {
    return task->attempt;
}
uint32_t weir_task_vertex(const weir_task_t *task) {
    return task->vertex;
}
int64_t weir_task_watermark(const weir_task_t *task) {
    return atomic_load_explicit(&task->wm_pub, memory_order_relaxed);
}
uint32_t weir_task_subtask(const weir_task_t *task) {
    return task->subtask;
}
weir_task_state_t weir_task_state(const weir_task_t *task) {
    return (weir_task_state_t)atomic_load_explicit(&task->state, memory_order_acquire);
}

/* Busy, idle and backpressured time (a consistent copy of t->clk: sequence lock). */
static void get_times(const weir_task_t *t, weir_task_metrics_t *out) {
    weir_task_clock_t *c = (weir_task_clock_t *)&t->clk; /* only read */
    int64_t start, end, idle, bp, since;
    int wait;
    for (;;) {
        uint64_t s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
        start = atomic_load_explicit(&c->start_ns, memory_order_relaxed);
        end = atomic_load_explicit(&c->end_ns, memory_order_relaxed);
        idle = atomic_load_explicit(&c->idle_ns, memory_order_relaxed);
        bp = atomic_load_explicit(&c->bp_ns, memory_order_relaxed);
        wait = atomic_load_explicit(&c->wait, memory_order_relaxed);
        since = atomic_load_explicit(&c->since_ns, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (!(s1 & 1) && atomic_load_explicit(&c->seq, memory_order_relaxed) == s1)
            break;
        sched_yield(); /* the task thread is inside a (short) update */
    }
    if (!start)
        return;
    int64_t now = end ? end : weir_now_ns();   /* read after the copy: now >= since */
    if (wait != WEIR_WAIT_NONE && now > since) /* the wait in progress counts already */
        *(wait == WEIR_WAIT_IDLE ? &idle : &bp) += now - since;
    int64_t busy = now - start - idle - bp;
    out->idle_ns = (uint64_t)idle;
    out->backpressured_ns = (uint64_t)bp;
    out->busy_ns = busy > 0 ? (uint64_t)busy : 0;
}

void weir_task_get_metrics(const weir_task_t *t, weir_task_metrics_t *out) {
    memset(out, 0, sizeof *out);
#define LD(f) out->f = atomic_load_explicit(&t->m.f, memory_order_relaxed)
    LD(records_in);
    LD(records_out);
    LD(buffers_in_remote);
    LD(bytes_in_remote);
    LD(buffers_out_remote);
    LD(bytes_out_remote);
    LD(buffers_out_local);
    LD(buffers_in_local);
    LD(bytes_in_local);
    LD(bytes_out_local);
    LD(late_records_dropped);
    LD(kafka_lag);
    LD(kafka_tx_committed);
    LD(kafka_tx_aborted);
    LD(out_queued);
    LD(state_cache_hits);
    LD(state_cache_misses);
#undef LD
    get_times(t, out);
    out->in_queued = atomic_load_explicit(&t->m.in_held, memory_order_relaxed) +
                     (t->mb ? weir_mailbox_buffers(t->mb) : 0);
    out->in_capacity = (uint64_t)t->n_ins * t->credits_per_channel;
    out->out_capacity = (uint64_t)t->n_outs * t->credits_per_channel;
    out->watermark = atomic_load_explicit(&t->wm_pub, memory_order_relaxed);
}

size_t weir_task_operator_count(const weir_task_t *t) {
    return t->n_ops;
}

void weir_task_get_operator_metrics(const weir_task_t *t, size_t i, weir_operator_metrics_t *out) {
    memset(out, 0, sizeof *out);
    if (i >= t->n_ops)
        return;
    const weir_ctx_t *c = &t->ctxs[i];
    const weir_node_t *n = t->ops[i].node;
    out->name = n ? n->name : NULL;
    out->uid = n ? n->uid : NULL;
    out->node = n ? n->id : 0;
    out->records_in = atomic_load_explicit(&c->records_in, memory_order_relaxed);
    out->records_out = atomic_load_explicit(&c->records_out, memory_order_relaxed);
}
