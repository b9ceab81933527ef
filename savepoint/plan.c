/* Owns the restore plan (plan.h): matching old operators to new nodes (uid, else node id for an
 * unchanged shape), the status of every stateful uid and the refusal line, the per-subtask
 * operator-state bundle and keyed restore document, and the report.
 *
 * Invariants:
 *  - the build checks the old tasks against the old operators first (savepoint_int.h's view):
 *    every later step may index by (vertex, subtask, chain position) without checks;
 *  - an old operator "has state" when a task of its vertex has a non-nil element at its chain
 *    position, or it is a keyed chain head and a task of its vertex has a keyed handle;
 *  - a refused plan (refusal != NULL) hands out nothing (weir_restore_plan_subtask refuses it);
 *  - bundles follow the new chain: element k is the state of the new chain's k-th operator, taken
 *    from wherever that operator's uid sat in the old job (another vertex, another position);
 *    with an unchanged parallelism a subtask gets only its own old state, else the union of every
 *    old subtask's non-nil state, ascending;
 *  - the keyed sources of new subtask k are exactly the old subtasks whose key-group range
 *    (weir_keygroup_range at the old parallelism) intersects k's and that have a keyed handle,
 *    ascending (old subtasks that finished have none: their key groups start empty);
 *  - work and memory are O(size of the metadata + size of the graphs), never proportional to a
 *    parallelism the metadata claims, except the report (one line per new subtask of a keyed uid).
 *
 * Threading: built on one thread; immutable afterwards, so every reader is thread-safe. */
#include "savepoint/plan.h"

#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "savepoint/savepoint_int.h"

/* The packed (msgpack) operator state an old subtask had for one operator. */
typedef struct old_state {
    uint32_t subtask;
    uint8_t *bytes;
    size_t len;
} old_state_t;

/* The keyed handle of an old subtask. */
typedef struct old_handle {
    uint32_t subtask;
    json_t *handle;
} old_handle_t;

typedef struct entry {
    weir_restore_status_t status;
    char *uid;  /* NULL: an operator without uid */
    char *name; /* of the new node when there is one, else of the old operator */
    weir_op_kind_t kind;
    int64_t node;     /* new node id, -1 = none */
    int64_t old_node; /* old operator (node) id, -1 = none */
    bool by_node_id;  /* matched by node id (the old operator had no uid) */
    uint32_t new_par; /* when node >= 0 */
    uint32_t old_par; /* when old_node >= 0 */
    char *why;        /* INCOMPATIBLE: what changed */
    char *keyed_note; /* RESTORED keyed operators: the states' fate */
    old_state_t *st;  /* RESTORED: non-nil operator states, ascending subtask */
    uint32_t n_st;
    old_handle_t *kh; /* RESTORED keyed chain heads with keyed state: handles, ascending */
    uint32_t n_kh;
    bool keyed_restore; /* the new chain head restores keyed state from kh */
    char *drops;        /* RESTORED: the old operator kept keyed state, and these of its declared
                         * states the new node does not declare ("'a' (map), 'b' (list)") */
} entry_t;

typedef struct plan_vertex {
    uint32_t parallelism;
    uint32_t n_nodes;
    int64_t *entry; /* per chain position: index into entries, -1 = nothing to restore */
} plan_vertex_t;

struct weir_restore_plan {
    char *base;
    bool claim;
    char *refusal; /* NULL: accepted */
    bool allow_non_restored;
    uint64_t id;
    weir_ck_kind_t kind;
    char job[33];
    char *new_name;
    uint32_t old_max, new_max;
    entry_t *e;
    uint32_t n_e;
    plan_vertex_t *v;
    uint32_t n_v;
};

/* ---------------------------------------------------------------- helpers */

static bool node_stateful(const weir_node_t *n) {
    if (n->n_states)
        return true;
    switch (n->kind) {
    case WEIR_OP_SOURCE_DATAGEN:
    case WEIR_OP_SOURCE_FILE:
    case WEIR_OP_SOURCE_GENERATOR:
    case WEIR_OP_SOURCE_KAFKA:
    case WEIR_OP_SINK_FILE:
    case WEIR_OP_SINK_KAFKA:
        return true;
    default:
        return false;
    }
}

/* A growing string (open_memstream); NULL text on OOM. */
typedef struct sbuf {
    char *text;
    size_t len;
    FILE *f;
} sbuf_t;

static bool sbuf_open(sbuf_t *b) {
    b->text = NULL;
    b->len = 0;
    b->f = open_memstream(&b->text, &b->len);
    return b->f != NULL;
}

/* Closes the stream: the text (malloc'd, possibly empty) or NULL on OOM. */
static char *sbuf_close(sbuf_t *b) {
    if (!b->f)
        return NULL;
    bool bad = ferror(b->f) != 0;
    if (fclose(b->f) != 0)
        bad = true;
    b->f = NULL;
    if (bad) {
        free(b->text);
        b->text = NULL;
    }
    return b->text;
}

/* "'uid'" or "'name' (node N, no uid)" */
static void print_who(FILE *f, const char *uid, const char *name, int64_t node) {
    if (uid)
        fprintf(f, "'%s'", uid);
    else
        fprintf(f, "'%s' (node %" PRId64 ", no uid)", name ? name : "", node);
}

/* Ascending subtask numbers as ranges: "0..2, 5". */
static void print_subtasks(FILE *f, const uint32_t *s, uint32_t n) {
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j + 1 < n && s[j + 1] == s[j] + 1)
            j++;
        fprintf(f, "%s%u", i ? ", " : "", s[i]);
        if (j > i)
            fprintf(f, "..%u", s[j]);
        i = j + 1;
    }
}

/* Sorts the indices @p idx of old operators (all with a uid) by uid: a merge sort, as qsort
 * passes no context to reach the operators. */
static void sort_by_uid(const weir_ckpt_op_t *ops, uint32_t *idx, uint32_t *tmp, uint32_t n) {
    if (n < 2)
        return;
    uint32_t h = n / 2;
    sort_by_uid(ops, idx, tmp, h);
    sort_by_uid(ops, idx + h, tmp, n - h);
    uint32_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = strcmp(ops[idx[i]].uid, ops[idx[j]].uid) <= 0 ? idx[i++] : idx[j++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* The old operator with @p uid, or -1. */
static int64_t find_uid(const weir_ckpt_op_t *ops, const uint32_t *idx, uint32_t n,
                        const char *uid) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ops[idx[mid]].uid, uid);
        if (c == 0)
            return idx[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void entry_clear(entry_t *e) {
    free(e->uid);
    free(e->name);
    free(e->why);
    free(e->keyed_note);
    free(e->drops);
    for (uint32_t i = 0; i < e->n_st; i++)
        free(e->st[i].bytes);
    free(e->st);
    for (uint32_t i = 0; i < e->n_kh; i++)
        json_decref(e->kh[i].handle);
    free(e->kh);
}

void weir_restore_plan_free(weir_restore_plan_t **plan) {
    if (!plan || !*plan)
        return;
    weir_restore_plan_t *p = *plan;
    for (uint32_t i = 0; i < p->n_e; i++)
        entry_clear(&p->e[i]);
    free(p->e);
    for (uint32_t i = 0; i < p->n_v; i++)
        free(p->v[i].entry);
    free(p->v);
    free(p->base);
    free(p->refusal);
    free(p->new_name);
    free(p);
    *plan = NULL;
}

/* ---------------------------------------------------------------- build */

/* Everything the build works with. */
typedef struct build {
    const weir_ckpt_meta_t *old;
    const weir_job_t *g;
    weir__sp_view_t view;
    const weir_ckpt_op_t *ops;
    uint32_t n_ops;
    bool *has_op, *has_keyed;         /* [n_ops] */
    int64_t *old_of_new;              /* [g->n_nodes] */
    int64_t *new_of_old;              /* [n_ops] */
    uint32_t *new_vertex, *new_index; /* [g->n_nodes] */
    weir_restore_plan_t *p;
    size_t cap_e;
} build_t;

static entry_t *add_entry(build_t *b) {
    if (weir_array_grow((void **)&b->p->e, &b->cap_e, b->p->n_e + 1, sizeof *b->p->e, 16) != 0)
        return NULL;
    entry_t *e = &b->p->e[b->p->n_e++];
    memset(e, 0, sizeof *e);
    e->node = -1;
    e->old_node = -1;
    return e;
}

/* Which old operators hold state. */
static void old_facts(build_t *b) {
    const weir__sp_view_t *v = &b->view;
    for (uint32_t o = 0; o < b->n_ops; o++) {
        const weir_ckpt_op_t *op = &b->ops[o];
        uint32_t first, count;
        weir__sp_view_tasks(v, op->vertex, &first, &count);
        for (uint32_t k = first; k < first + count; k++) {
            uint32_t t = v->order[k];
            if (weir__sp_view_op_state(v, t, op->index))
                b->has_op[o] = true;
            if (v->handle[t] && op->keyed && op->index == 0)
                b->has_keyed[o] = true;
        }
    }
}

/* The same operators in the same chains (kinds, vertices, positions, keyed): then an old
 * operator without uid is the new node with its id. */
static bool same_shape(const build_t *b) {
    if (b->n_ops != b->g->n_nodes || b->g->n_vertices != b->view.n_vertices)
        return false;
    for (uint32_t i = 0; i < b->n_ops; i++) {
        const weir_ckpt_op_t *op = &b->ops[i];
        const weir_node_t *nd = &b->g->nodes[i];
        if (op->kind != nd->kind || op->vertex != b->new_vertex[i] ||
            op->index != b->new_index[i] || op->keyed != nd->keyed)
            return false;
    }
    return true;
}

static int match(build_t *b) {
    const weir_job_t *g = b->g;
    uint32_t *idx = malloc((b->n_ops ? b->n_ops : 1) * sizeof *idx);
    uint32_t *tmp = malloc((b->n_ops ? b->n_ops : 1) * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        return WEIR_ENOMEM;
    }
    uint32_t n = 0;
    for (uint32_t o = 0; o < b->n_ops; o++)
        if (b->ops[o].uid)
            idx[n++] = o;
    sort_by_uid(b->ops, idx, tmp, n);
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        if (!g->nodes[i].uid)
            continue;
        int64_t o = find_uid(b->ops, idx, n, g->nodes[i].uid);
        if (o >= 0) {
            b->old_of_new[i] = o;
            b->new_of_old[o] = i;
        }
    }
    free(idx);
    free(tmp);
    if (same_shape(b))
        for (uint32_t i = 0; i < g->n_nodes; i++)
            if (!b->ops[i].uid && b->new_of_old[i] < 0 && b->old_of_new[i] < 0) {
                b->old_of_new[i] = i;
                b->new_of_old[i] = i;
            }
    return 0;
}

/* Why the old operator @p op cannot be restored into @p nd (malloc'd), NULL when it can. */
static char *incompatible(const weir_ckpt_op_t *op, const weir_node_t *nd, bool *oom) {
    sbuf_t s;
    if (!sbuf_open(&s)) {
        *oom = true;
        return NULL;
    }
    bool bad = false;
    if (op->kind != nd->kind) {
        fprintf(s.f,
                "was a %s operator and is now a %s operator (state cannot move to another kind "
                "of operator)",
                weir_op_kind_name(op->kind), weir_op_kind_name(nd->kind));
        bad = true;
    }
    for (uint32_t i = 0; !bad && i < nd->n_states; i++)
        for (uint32_t j = 0; !bad && j < op->n_states; j++)
            if (op->states[j].name && strcmp(op->states[j].name, nd->states[i].name) == 0 &&
                op->states[j].kind != nd->states[i].kind) {
                fprintf(s.f, "state '%s' was a %s state and is now a %s state", nd->states[i].name,
                        weir_state_kind_name(op->states[j].kind),
                        weir_state_kind_name(nd->states[i].kind));
                bad = true;
            }
    /* a TTL state stores an expiry in front of each value, a state without none: the layouts
     * differ, so TTL cannot be added to or removed from a restored state (its duration and
     * update mode may change: stored expiries stay, new writes use the new duration) */
    for (uint32_t i = 0; !bad && i < nd->n_states; i++)
        for (uint32_t j = 0; !bad && j < op->n_states; j++)
            if (op->states[j].name && strcmp(op->states[j].name, nd->states[i].name) == 0 &&
                (op->states[j].ttl_ms > 0) != (nd->states[i].ttl_ms > 0)) {
                fprintf(s.f,
                        "state '%s' %s time to live and now %s (the stored values %s "
                        "expiry time; keep the state's TTL setting or rename the state)",
                        nd->states[i].name, op->states[j].ttl_ms > 0 ? "had a" : "had no",
                        nd->states[i].ttl_ms > 0 ? "has one" : "has none",
                        op->states[j].ttl_ms > 0 ? "carry an" : "carry no");
                bad = true;
            }
    char *text = sbuf_close(&s);
    if (!text) {
        *oom = true;
        return NULL;
    }
    if (!bad) {
        free(text);
        return NULL;
    }
    return text;
}

/* "'count' (value) restored, 'seen' (map) new, 'old' (list) dropped" */
static char *keyed_note(const weir_ckpt_op_t *op, const weir_node_t *nd, bool restored) {
    sbuf_t s;
    if (!sbuf_open(&s))
        return NULL;
    const char *sep = "";
    for (uint32_t i = 0; i < nd->n_states; i++) {
        bool had = false;
        for (uint32_t j = 0; j < op->n_states && !had; j++)
            had = op->states[j].name && strcmp(op->states[j].name, nd->states[i].name) == 0;
        fprintf(s.f, "%s'%s' (%s) %s", sep, nd->states[i].name,
                weir_state_kind_name(nd->states[i].kind),
                had && restored ? "restored"
                : had           ? "empty in the snapshot"
                                : "new");
        sep = ", ";
    }
    for (uint32_t j = 0; j < op->n_states; j++) {
        bool kept = false;
        for (uint32_t i = 0; i < nd->n_states && !kept; i++)
            kept = op->states[j].name && strcmp(op->states[j].name, nd->states[i].name) == 0;
        if (!kept) {
            fprintf(s.f, "%s'%s' (%s) dropped", sep, op->states[j].name ? op->states[j].name : "",
                    weir_state_kind_name(op->states[j].kind));
            sep = ", ";
        }
    }
    return sbuf_close(&s);
}

/* Copies the old state (operator states, keyed handles) of old operator @p o into @p e. */
static int take_state(build_t *b, entry_t *e, uint32_t o, bool keyed) {
    const weir__sp_view_t *v = &b->view;
    const weir_ckpt_op_t *op = &b->ops[o];
    uint32_t first, count;
    weir__sp_view_tasks(v, op->vertex, &first, &count);
    if (count == 0)
        return 0;
    e->st = calloc(count, sizeof *e->st);
    e->kh = keyed ? calloc(count, sizeof *e->kh) : NULL;
    if (!e->st || (keyed && !e->kh))
        return WEIR_ENOMEM;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = 0;
    for (uint32_t k = first; k < first + count && rc == 0; k++) {
        uint32_t t = v->order[k];
        uint32_t s = b->old->tasks[t].subtask;
        const msgpack_object *st = weir__sp_view_op_state(v, t, op->index);
        if (st) {
            sb.size = 0;
            if (msgpack_pack_object(&pk, *st) != 0 || !(e->st[e->n_st].bytes = malloc(sb.size))) {
                rc = WEIR_ENOMEM;
                break;
            }
            memcpy(e->st[e->n_st].bytes, sb.data, sb.size);
            e->st[e->n_st].len = sb.size;
            e->st[e->n_st++].subtask = s;
        }
        if (keyed && v->handle[t])
            e->kh[e->n_kh++] = (old_handle_t){s, json_incref(v->handle[t])};
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The old keyed states of @p op that @p nd does not declare, as "'a' (map), 'b' (list)"
 * (malloc'd), or NULL when there are none or @p op kept no keyed state; *oom on failure. */
static char *dropped_states(const weir_ckpt_op_t *op, const weir_node_t *nd, bool has_keyed,
                            bool *oom) {
    if (!has_keyed)
        return NULL;
    sbuf_t s;
    if (!sbuf_open(&s)) {
        *oom = true;
        return NULL;
    }
    const char *sep = "";
    for (uint32_t j = 0; j < op->n_states; j++) {
        bool kept = false;
        for (uint32_t i = 0; i < nd->n_states && !kept; i++)
            kept = op->states[j].name && strcmp(op->states[j].name, nd->states[i].name) == 0;
        if (!kept) {
            fprintf(s.f, "%s'%s' (%s)", sep, op->states[j].name ? op->states[j].name : "",
                    weir_state_kind_name(op->states[j].kind));
            sep = ", ";
        }
    }
    char *text = sbuf_close(&s);
    if (!text)
        *oom = true;
    else if (!*text) {
        free(text);
        text = NULL;
    }
    return text;
}

static int add_node_entry(build_t *b, uint32_t i) {
    const weir_node_t *nd = &b->g->nodes[i];
    int64_t o = b->old_of_new[i];
    bool old_state = o >= 0 && (b->has_op[o] || b->has_keyed[o]);
    if (!old_state && !node_stateful(nd))
        return 0;
    entry_t *e = add_entry(b);
    if (!e)
        return WEIR_ENOMEM;
    e->node = i;
    e->kind = nd->kind;
    e->new_par = nd->parallelism;
    if ((nd->uid && !(e->uid = strdup(nd->uid))) || !(e->name = strdup(nd->name ? nd->name : "")))
        return WEIR_ENOMEM;
    if (o >= 0) {
        e->old_node = o;
        e->old_par = b->ops[o].parallelism;
        e->by_node_id = !b->ops[o].uid;
    }
    if (!old_state) {
        e->status = WEIR_RESTORE_NEW;
        return 0;
    }
    const weir_ckpt_op_t *op = &b->ops[o];
    bool oom = false;
    e->why = incompatible(op, nd, &oom);
    if (oom)
        return WEIR_ENOMEM;
    if (e->why) {
        e->status = WEIR_RESTORE_INCOMPATIBLE;
        return 0;
    }
    e->status = WEIR_RESTORE_RESTORED;
    e->drops = dropped_states(op, nd, b->has_keyed[o], &oom);
    if (oom)
        return WEIR_ENOMEM;
    e->keyed_restore = b->has_keyed[o] && nd->keyed && b->new_index[i] == 0 && nd->n_states > 0;
    if (nd->n_states || op->n_states) {
        e->keyed_note = keyed_note(op, nd, e->keyed_restore);
        if (!e->keyed_note)
            return WEIR_ENOMEM;
    }
    return take_state(b, e, (uint32_t)o, e->keyed_restore);
}

static int add_dropped(build_t *b, uint32_t o) {
    const weir_ckpt_op_t *op = &b->ops[o];
    entry_t *e = add_entry(b);
    if (!e)
        return WEIR_ENOMEM;
    e->status = WEIR_RESTORE_DROPPED;
    e->old_node = o;
    e->old_par = op->parallelism;
    e->kind = op->kind;
    if ((op->uid && !(e->uid = strdup(op->uid))) || !(e->name = strdup(op->name ? op->name : "")))
        return WEIR_ENOMEM;
    return 0;
}

/* The refusal line (NULL: accepted), into p->refusal. */
static int refusal(build_t *b, bool allow_non_restored) {
    weir_restore_plan_t *p = b->p;
    sbuf_t s;
    if (!sbuf_open(&s))
        return WEIR_ENOMEM;
    const char *sep = "";
    bool any = false;
    if (p->old_max != p->new_max) {
        fprintf(s.f,
                "max parallelism %u of the savepoint differs from the new job's %u: it is fixed "
                "for a job's life",
                p->old_max, p->new_max);
        sep = "; ";
        any = true;
    }
    for (uint32_t i = 0; i < p->n_e; i++) {
        const entry_t *e = &p->e[i];
        if (e->status != WEIR_RESTORE_INCOMPATIBLE)
            continue;
        fprintf(s.f, "%soperator %s", sep, e->uid ? "uid " : "");
        print_who(s.f, e->uid, e->name, e->node);
        fprintf(s.f, ": %s", e->why);
        sep = "; ";
        any = true;
    }
    uint32_t n_dropped = 0;
    for (uint32_t i = 0; i < p->n_e; i++)
        n_dropped += p->e[i].status == WEIR_RESTORE_DROPPED;
    if (n_dropped && !allow_non_restored) {
        fprintf(s.f, "%sstate of operator uid(s) ", sep);
        const char *comma = "";
        for (uint32_t i = 0; i < p->n_e; i++) {
            const entry_t *e = &p->e[i];
            if (e->status != WEIR_RESTORE_DROPPED)
                continue;
            fputs(comma, s.f);
            print_who(s.f, e->uid, e->name, e->old_node);
            comma = ", ";
        }
        fprintf(s.f,
                " in %s has no operator in the new job: pass --allowNonRestoredState to drop it",
                p->base);
        sep = "; ";
        any = true;
    }
    /* a keyed state the new operator no longer declares would be dropped as silently as a
     * removed operator: the same flag (a renamed state or a changed internal layout, e.g. of
     * the window operator, shows here before anything runs) */
    for (uint32_t i = 0; !allow_non_restored && i < p->n_e; i++) {
        const entry_t *e = &p->e[i];
        if (!e->drops)
            continue;
        fprintf(s.f, "%skeyed state %s of operator %s", sep, e->drops, e->uid ? "uid " : "");
        print_who(s.f, e->uid, e->name, e->node);
        fprintf(s.f,
                " in %s is not declared by the new job: pass --allowNonRestoredState to drop it",
                p->base);
        sep = "; ";
        any = true;
    }
    char *text = sbuf_close(&s);
    if (!text)
        return WEIR_ENOMEM;
    if (any)
        p->refusal = text;
    else
        free(text);
    return 0;
}

static int chains(build_t *b) {
    const weir_job_t *g = b->g;
    weir_restore_plan_t *p = b->p;
    p->v = calloc(g->n_vertices, sizeof *p->v);
    if (!p->v)
        return WEIR_ENOMEM;
    p->n_v = g->n_vertices;
    for (uint32_t x = 0; x < g->n_vertices; x++) {
        const weir_vertex_t *vx = &g->vertices[x];
        p->v[x].parallelism = vx->parallelism;
        p->v[x].n_nodes = vx->n_nodes;
        p->v[x].entry = malloc((vx->n_nodes ? vx->n_nodes : 1) * sizeof *p->v[x].entry);
        if (!p->v[x].entry)
            return WEIR_ENOMEM;
        for (uint32_t k = 0; k < vx->n_nodes; k++)
            p->v[x].entry[k] = -1;
    }
    for (uint32_t i = 0; i < p->n_e; i++) {
        const entry_t *e = &p->e[i];
        if (e->status == WEIR_RESTORE_RESTORED && e->node >= 0)
            p->v[b->new_vertex[e->node]].entry[b->new_index[e->node]] = i;
    }
    return 0;
}

int weir_restore_plan_build(const weir_ckpt_meta_t *old, const weir_job_t *old_graph,
                            const weir_job_t *new_graph, const char *base, bool claim,
                            bool allow_non_restored, weir_restore_plan_t **plan, char *errstr,
                            size_t errlen) {
    if (plan)
        *plan = NULL;
    if (!old || !new_graph || !new_graph->vertices || !base || !plan)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "restore plan: missing metadata, base directory or finalized job graph");
    build_t b = {.old = old, .g = new_graph};
    weir_ckpt_meta_t from_graph = {0};
    uint32_t old_max;
    int rc;
    if (old->n_ops) {
        b.ops = old->ops;
        b.n_ops = old->n_ops;
        old_max = old->max_parallelism;
    } else if (old_graph) {
        rc = weir_ckpt_meta_set_graph(&from_graph, old_graph);
        if (rc != 0)
            return weir_errf(errstr, errlen, rc,
                             rc == WEIR_ENOMEM
                                 ? "restore plan: out of memory"
                                 : "restore plan: the old job graph is not finalized");
        b.ops = from_graph.ops;
        b.n_ops = from_graph.n_ops;
        old_max = old_graph->max_parallelism;
    } else {
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s/_metadata (checkpoint %" PRIu64 ") lists no operators (format version "
                         "1, written before savepoints): only the job that wrote it can restore it",
                         base, old->id);
    }
    if (old_max == 0) {
        weir_ckpt_meta_clear(&from_graph);
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "checkpoint %" PRIu64 " in %s does not match its operators: its max "
                         "parallelism is 0",
                         old->id, base);
    }
    char why[512] = "";
    rc = weir__sp_view_build(&b.view, old, b.ops, b.n_ops, old_max, why, sizeof why);
    if (rc != 0) {
        weir_ckpt_meta_clear(&from_graph);
        if (rc == WEIR_ENOMEM)
            return weir_errf(errstr, errlen, rc, "restore plan: out of memory");
        return weir_errf(errstr, errlen, rc,
                         "checkpoint %" PRIu64 " in %s does not match its operators: %s", old->id,
                         base, why);
    }
    uint32_t nn = new_graph->n_nodes;
    b.has_op = calloc(b.n_ops, sizeof *b.has_op);
    b.has_keyed = calloc(b.n_ops, sizeof *b.has_keyed);
    b.new_of_old = malloc(b.n_ops * sizeof *b.new_of_old);
    b.old_of_new = malloc((nn ? nn : 1) * sizeof *b.old_of_new);
    b.new_vertex = calloc(nn ? nn : 1, sizeof *b.new_vertex);
    b.new_index = calloc(nn ? nn : 1, sizeof *b.new_index);
    b.p = calloc(1, sizeof *b.p);
    rc = WEIR_ENOMEM;
    if (!b.has_op || !b.has_keyed || !b.new_of_old || !b.old_of_new || !b.new_vertex ||
        !b.new_index || !b.p || !(b.p->base = strdup(base)) ||
        !(b.p->new_name = strdup(new_graph->name ? new_graph->name : "")))
        goto done;
    weir_restore_plan_t *p = b.p;
    p->claim = claim;
    p->allow_non_restored = allow_non_restored;
    p->id = old->id;
    p->kind = old->kind;
    memcpy(p->job, old->job, sizeof p->job);
    p->job[sizeof p->job - 1] = 0;
    p->old_max = old_max;
    p->new_max = new_graph->max_parallelism;
    for (uint32_t o = 0; o < b.n_ops; o++)
        b.new_of_old[o] = -1;
    for (uint32_t i = 0; i < nn; i++)
        b.old_of_new[i] = -1;
    for (uint32_t x = 0; x < new_graph->n_vertices; x++)
        for (uint32_t k = 0; k < new_graph->vertices[x].n_nodes; k++)
            if (new_graph->vertices[x].nodes[k] < nn) {
                b.new_vertex[new_graph->vertices[x].nodes[k]] = x;
                b.new_index[new_graph->vertices[x].nodes[k]] = k;
            }
    old_facts(&b);
    if ((rc = match(&b)) != 0)
        goto done;
    for (uint32_t i = 0; i < nn; i++)
        if ((rc = add_node_entry(&b, i)) != 0)
            goto done;
    for (uint32_t o = 0; o < b.n_ops; o++)
        if (b.new_of_old[o] < 0 && (b.has_op[o] || b.has_keyed[o]) && (rc = add_dropped(&b, o)))
            goto done;
    if ((rc = refusal(&b, allow_non_restored)) != 0 || (rc = chains(&b)) != 0)
        goto done;
    rc = 0;
done:
    if (rc == WEIR_ENOMEM) {
        weir_fmt(errstr, errlen, "restore plan: out of memory");
        weir_restore_plan_free(&b.p);
    } else if (b.p && b.p->refusal) {
        weir_fmt(errstr, errlen, "%s", b.p->refusal);
        rc = WEIR_EINVAL;
    }
    *plan = b.p;
    weir__sp_view_free(&b.view);
    weir_ckpt_meta_clear(&from_graph);
    free(b.has_op);
    free(b.has_keyed);
    free(b.new_of_old);
    free(b.old_of_new);
    free(b.new_vertex);
    free(b.new_index);
    return rc;
}

/* ---------------------------------------------------------------- per subtask */

/* The old subtasks [*lo, *hi) of @p e's handles whose key groups overlap [first, last]. */
static void keyed_sources(const weir_restore_plan_t *p, const entry_t *e, uint32_t first,
                          uint32_t last, uint32_t *lo, uint32_t *hi) {
    *lo = *hi = 0;
    if (first > last || e->n_kh == 0)
        return;
    uint32_t a = weir_keygroup_subtask(first, e->old_par, p->old_max);
    uint32_t z = weir_keygroup_subtask(last, e->old_par, p->old_max);
    uint32_t i = 0;
    while (i < e->n_kh && e->kh[i].subtask < a)
        i++;
    uint32_t j = i;
    while (j < e->n_kh && e->kh[j].subtask <= z)
        j++;
    *lo = i;
    *hi = j;
}

static char *keyed_document(const weir_restore_plan_t *p, const entry_t *e, uint32_t first,
                            uint32_t last, int *rc) {
    uint32_t lo, hi;
    keyed_sources(p, e, first, last, &lo, &hi);
    *rc = 0;
    if (lo == hi)
        return NULL;
    json_t *sources = json_array();
    for (uint32_t i = lo; sources && i < hi; i++) {
        uint32_t a, z;
        weir_keygroup_range(e->kh[i].subtask, e->old_par, p->old_max, &a, &z);
        json_t *s = json_pack("{s:[I,I],s:O}", "range", (json_int_t)a, (json_int_t)z, "handle",
                              e->kh[i].handle);
        if (!s || json_array_append_new(sources, s) != 0) {
            json_decref(sources);
            sources = NULL;
        }
    }
    json_t *doc = sources
                      ? json_pack("{s:s,s:b,s:I,s:[I,I],s:o}", "base", p->base, "claim",
                                  (int)p->claim, "max_parallelism", (json_int_t)p->old_max, "range",
                                  (json_int_t)first, (json_int_t)last, "sources", sources)
                      : NULL;
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text)
        *rc = WEIR_ENOMEM;
    return text;
}

int weir_restore_plan_subtask(const weir_restore_plan_t *plan, uint32_t vertex, uint32_t subtask,
                              uint8_t **op_bundle, size_t *op_len, char **keyed_json) {
    *op_bundle = NULL;
    *op_len = 0;
    *keyed_json = NULL;
    if (!plan || plan->refusal || vertex >= plan->n_v || subtask >= plan->v[vertex].parallelism)
        return WEIR_EINVAL;
    const plan_vertex_t *v = &plan->v[vertex];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int bad = msgpack_pack_array(&pk, v->n_nodes);
    bool any = false;
    for (uint32_t k = 0; k < v->n_nodes; k++) {
        const entry_t *e = v->entry[k] >= 0 ? &plan->e[v->entry[k]] : NULL;
        uint32_t lo = 0, hi = 0;
        if (e && e->old_par == v->parallelism) {
            while (lo < e->n_st && e->st[lo].subtask < subtask)
                lo++;
            hi = lo < e->n_st && e->st[lo].subtask == subtask ? lo + 1 : lo;
        } else if (e) {
            hi = e->n_st;
        }
        if (lo == hi) {
            bad |= msgpack_pack_nil(&pk);
            continue;
        }
        any = true;
        bad |= msgpack_pack_array(&pk, 2);
        bad |= msgpack_pack_uint32(&pk, e->old_par);
        bad |= msgpack_pack_array(&pk, hi - lo);
        for (uint32_t i = lo; i < hi; i++) {
            bad |= msgpack_pack_array(&pk, 2);
            bad |= msgpack_pack_uint32(&pk, e->st[i].subtask);
            bad |= msgpack_sbuffer_write(&sb, (const char *)e->st[i].bytes, e->st[i].len);
        }
    }
    if (bad) {
        msgpack_sbuffer_destroy(&sb);
        return WEIR_ENOMEM;
    }
    if (any) {
        *op_len = sb.size; /* release zeroes it */
        *op_bundle = (uint8_t *)msgpack_sbuffer_release(&sb);
    }
    msgpack_sbuffer_destroy(&sb);
    const entry_t *head = v->n_nodes && v->entry[0] >= 0 ? &plan->e[v->entry[0]] : NULL;
    if (head && head->keyed_restore) {
        uint32_t first, last;
        weir_keygroup_range(subtask, v->parallelism, plan->old_max, &first, &last);
        int rc;
        *keyed_json = keyed_document(plan, head, first, last, &rc);
        if (rc != 0) {
            free(*op_bundle);
            *op_bundle = NULL;
            *op_len = 0;
            return rc;
        }
    }
    return 0;
}

int weir_restore_plan_status(const weir_restore_plan_t *plan, const char *uid,
                             weir_restore_status_t *status) {
    for (uint32_t i = 0; plan && uid && i < plan->n_e; i++)
        if (plan->e[i].uid && strcmp(plan->e[i].uid, uid) == 0) {
            *status = plan->e[i].status;
            return 0;
        }
    return WEIR_ENOTFOUND;
}

/* ---------------------------------------------------------------- report */

static void report_entry(const weir_restore_plan_t *p, const entry_t *e, bool allow, FILE *out) {
    if (e->uid)
        fprintf(out, "uid '%s'", e->uid);
    else
        fprintf(out, "node %" PRId64 ", no uid", e->node >= 0 ? e->node : e->old_node);
    fprintf(out, " (%s '%s', parallelism ", weir_op_kind_name(e->kind), e->name);
    if (e->old_node >= 0 && e->node >= 0)
        fprintf(out, "%u -> %u", e->old_par, e->new_par);
    else
        fprintf(out, "%u", e->node >= 0 ? e->new_par : e->old_par);
    fputs("): ", out);
    switch (e->status) {
    case WEIR_RESTORE_RESTORED:
        fputs("restored\n", out);
        break;
    case WEIR_RESTORE_NEW:
        fputs("new (starts empty)\n", out);
        break;
    case WEIR_RESTORE_DROPPED:
        fputs(allow ? "dropped (--allowNonRestoredState)\n"
                    : "dropped (needs --allowNonRestoredState)\n",
              out);
        break;
    case WEIR_RESTORE_INCOMPATIBLE:
        fprintf(out, "incompatible: %s\n", e->why);
        break;
    }
    if (e->by_node_id && e->status != WEIR_RESTORE_NEW)
        fprintf(out,
                "    matched by node id %" PRId64 ": the old operator has no uid and the job's "
                "shape is unchanged\n",
                e->old_node);
    if (e->status != WEIR_RESTORE_RESTORED)
        return;
    if (e->n_st) {
        fputs("    operator state of old subtasks ", out);
        uint32_t *s = malloc(e->n_st * sizeof *s);
        for (uint32_t i = 0; s && i < e->n_st; i++)
            s[i] = e->st[i].subtask;
        if (s)
            print_subtasks(out, s, e->n_st);
        free(s);
        fputs(e->old_par == e->new_par ? ": each new subtask restores its own\n"
                                       : ": every new subtask receives all of them\n",
              out);
    }
    if (e->keyed_note)
        fprintf(out, "    keyed state: %s\n", e->keyed_note);
    if (!e->keyed_restore || p->old_max != p->new_max)
        return;
    uint32_t *s = malloc((e->n_kh ? e->n_kh : 1) * sizeof *s);
    if (!s)
        return;
    for (uint32_t k = 0; k < e->new_par; k++) {
        uint32_t first, last, lo, hi;
        weir_keygroup_range(k, e->new_par, p->old_max, &first, &last);
        keyed_sources(p, e, first, last, &lo, &hi);
        fprintf(out, "    new subtask %u: groups %u-%u from ", k, first, last);
        if (lo == hi) {
            fputs("no old subtask (starts empty)\n", out);
            continue;
        }
        for (uint32_t i = lo; i < hi; i++)
            s[i - lo] = e->kh[i].subtask;
        fputs(hi - lo == 1 ? "old subtask " : "old subtasks ", out);
        print_subtasks(out, s, hi - lo);
        fputc('\n', out);
    }
    free(s);
}

void weir_restore_plan_report(const weir_restore_plan_t *p, FILE *out) {
    if (!p || !out)
        return;
    fprintf(out, "restore from %s: %s %" PRIu64 " of job %s, max parallelism %u\n", p->base,
            p->kind == WEIR_CK_CHECKPOINT ? "checkpoint" : "savepoint", p->id, p->job, p->old_max);
    fprintf(out, "new job '%s': max parallelism %u\n", p->new_name, p->new_max);
    for (uint32_t i = 0; i < p->n_e; i++)
        report_entry(p, &p->e[i], p->allow_non_restored, out);
    if (p->refusal)
        fprintf(out, "result: refused: %s\n", p->refusal);
    else
        fputs("result: ok\n", out);
}
