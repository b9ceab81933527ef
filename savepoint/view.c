/* Owns the checked view of a _metadata's tasks over the operators of the job that wrote it
 * (savepoint_int.h): chains by vertex, tasks by (vertex, subtask), decoded operator-state arrays
 * and parsed keyed handles, and the msgpack plausibility check that keeps msgpack-c's allocations
 * proportional to its input.
 *
 * Invariants: what weir__sp_view_build accepts satisfies every rule listed in savepoint_int.h;
 * any other input is refused with one line naming the operator or task; work and memory are
 * O(n log n) in the size of the metadata (never in a parallelism it claims). The view borrows
 * m and ops, which must outlive it.
 *
 * Threading: a view belongs to one thread; nothing global. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"
#include "savepoint/savepoint_int.h"

/* ---------------------------------------------------------------- msgpack plausibility */

static bool be_uint(const uint8_t *p, size_t len, size_t *off, unsigned bytes, uint64_t *out) {
    if (len - *off < bytes)
        return false;
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[*off + i];
    *off += bytes;
    *out = v;
    return true;
}

bool weir__sp_msgpack_sane(const uint8_t *p, size_t len) {
    size_t off = 0;
    uint64_t pending = 1; /* objects still to read */
    while (pending) {
        if (off >= len || pending > len - off)
            return false;
        pending--;
        uint8_t b = p[off++];
        uint64_t skip = 0, children = 0, n = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, false, true */
        } else if ((b & 0xf0) == 0x80) {
            children = 2u * (b & 0x0fu);
        } else if ((b & 0xf0) == 0x90) {
            children = b & 0x0fu;
        } else if ((b & 0xe0) == 0xa0) {
            skip = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc4: /* bin 8/16/32, str 8/16/32 */
            case 0xd9:
                if (!be_uint(p, len, &off, 1, &skip))
                    return false;
                break;
            case 0xc5:
            case 0xda:
                if (!be_uint(p, len, &off, 2, &skip))
                    return false;
                break;
            case 0xc6:
            case 0xdb:
                if (!be_uint(p, len, &off, 4, &skip))
                    return false;
                break;
            case 0xc7: /* ext 8/16/32: length, type byte, data */
            case 0xc8:
            case 0xc9:
                if (!be_uint(p, len, &off, b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4, &skip))
                    return false;
                skip += 1;
                break;
            case 0xca:
                skip = 4;
                break;
            case 0xcb:
                skip = 8;
                break;
            case 0xcc:
            case 0xd0:
                skip = 1;
                break;
            case 0xcd:
            case 0xd1:
                skip = 2;
                break;
            case 0xce:
            case 0xd2:
                skip = 4;
                break;
            case 0xcf:
            case 0xd3:
                skip = 8;
                break;
            case 0xd4: /* fixext 1/2/4/8/16: type byte + data */
            case 0xd5:
            case 0xd6:
            case 0xd7:
            case 0xd8:
                skip = 1 + (1u << (b - 0xd4));
                break;
            case 0xdc:
            case 0xdd:
                if (!be_uint(p, len, &off, b == 0xdc ? 2 : 4, &children))
                    return false;
                break;
            case 0xde:
            case 0xdf:
                if (!be_uint(p, len, &off, b == 0xde ? 2 : 4, &n))
                    return false;
                children = 2 * n;
                break;
            default: /* 0xc1: never used */
                return false;
            }
        }
        if (skip > len - off)
            return false;
        off += skip;
        pending += children;
    }
    return off == len;
}

/* ---------------------------------------------------------------- the view */

/* A task by (vertex, subtask), with its index in m->tasks. */
typedef struct task_key {
    uint32_t vertex, subtask, index;
} task_key_t;

static int cmp_task_key(const void *a, const void *b) {
    const task_key_t *x = a, *y = b;
    if (x->vertex != y->vertex)
        return x->vertex < y->vertex ? -1 : 1;
    if (x->subtask != y->subtask)
        return x->subtask < y->subtask ? -1 : 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *op_name(const weir_ckpt_op_t *op) {
    return op->name ? op->name : "";
}

void weir__sp_view_free(weir__sp_view_t *v) {
    if (!v)
        return;
    if (v->m) {
        for (uint32_t i = 0; v->op_state && i < v->m->n_tasks; i++)
            msgpack_unpacked_destroy(&v->op_state[i]);
        for (uint32_t i = 0; v->handle && i < v->m->n_tasks; i++)
            json_decref(v->handle[i]);
    }
    free(v->op_state);
    free(v->handle);
    free(v->chain_len);
    free(v->parallelism);
    free(v->voff);
    free(v->by_pos);
    free(v->order);
    memset(v, 0, sizeof *v);
}

/* Chains: vertices, positions, parallelism, keyed heads, unique uids. */
static int build_chains(weir__sp_view_t *v, uint32_t max_par, char *errstr, size_t errlen) {
    uint32_t n = v->n_ops;
    if (n == 0)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "no operators");
    for (uint32_t i = 0; i < n; i++) {
        const weir_ckpt_op_t *op = &v->ops[i];
        if (op->vertex >= n)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "operator %u '%s': vertex %u, but there are %u operators", i,
                             op_name(op), op->vertex, n);
        if (op->vertex + 1 > v->n_vertices)
            v->n_vertices = op->vertex + 1;
    }
    v->chain_len = calloc(v->n_vertices, sizeof *v->chain_len);
    v->parallelism = calloc(v->n_vertices, sizeof *v->parallelism);
    v->voff = calloc(v->n_vertices + 1, sizeof *v->voff);
    v->by_pos = malloc(n * sizeof *v->by_pos);
    if (!v->chain_len || !v->parallelism || !v->voff || !v->by_pos)
        return WEIR_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        v->chain_len[v->ops[i].vertex]++;
    for (uint32_t x = 0; x < v->n_vertices; x++) {
        if (v->chain_len[x] == 0)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT, "vertex %u has no operator", x);
        v->voff[x + 1] = v->voff[x] + v->chain_len[x];
    }
    for (uint32_t i = 0; i < n; i++)
        v->by_pos[i] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const weir_ckpt_op_t *op = &v->ops[i];
        uint32_t x = op->vertex;
        if (op->index >= v->chain_len[x] || v->by_pos[v->voff[x] + op->index] != UINT32_MAX)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "operator %u '%s': position %u in the chain of vertex %u is taken or "
                             "out of range (%u operators)",
                             i, op_name(op), op->index, x, v->chain_len[x]);
        v->by_pos[v->voff[x] + op->index] = i;
        if (op->parallelism == 0 || op->parallelism > max_par)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "operator %u '%s': parallelism %u is not in 1..%u", i, op_name(op),
                             op->parallelism, max_par);
        if (v->parallelism[x] && v->parallelism[x] != op->parallelism)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "operator %u '%s': parallelism %u differs from %u of its chain", i,
                             op_name(op), op->parallelism, v->parallelism[x]);
        v->parallelism[x] = op->parallelism;
        if (op->keyed && op->index != 0)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "operator %u '%s' is keyed but not the head of its chain", i,
                             op_name(op));
        if (op->n_states && !op->keyed)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                             "operator %u '%s' declares keyed state but is not keyed", i,
                             op_name(op));
    }
    /* unique uids: sorted */
    const char **uids = malloc(n * sizeof *uids);
    if (!uids)
        return WEIR_ENOMEM;
    uint32_t nu = 0;
    for (uint32_t i = 0; i < n; i++)
        if (v->ops[i].uid)
            uids[nu++] = v->ops[i].uid;
    qsort(uids, nu, sizeof *uids, cmp_str);
    int rc = 0;
    for (uint32_t i = 1; i < nu && rc == 0; i++)
        if (strcmp(uids[i], uids[i - 1]) == 0)
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT, "uid '%.200s' names two operators",
                           uids[i]);
    free(uids);
    return rc;
}

int weir__sp_view_build(weir__sp_view_t *v, const weir_ckpt_meta_t *m, const weir_ckpt_op_t *ops,
                        uint32_t n_ops, uint32_t max_parallelism, char *errstr, size_t errlen) {
    memset(v, 0, sizeof *v);
    v->m = m;
    v->ops = ops;
    v->n_ops = n_ops;
    uint32_t max_par = max_parallelism ? max_parallelism : WEIR_MAX_MAX_PARALLELISM;
    int rc = build_chains(v, max_par, errstr, errlen);
    if (rc != 0)
        goto fail;
    uint32_t nt = m->n_tasks;
    task_key_t *keys = malloc((nt ? nt : 1) * sizeof *keys);
    v->order = malloc((nt ? nt : 1) * sizeof *v->order);
    v->op_state = calloc(nt ? nt : 1, sizeof *v->op_state);
    v->handle = calloc(nt ? nt : 1, sizeof *v->handle);
    if (!keys || !v->order || !v->op_state || !v->handle) {
        free(keys);
        rc = WEIR_ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < nt; i++)
        msgpack_unpacked_init(&v->op_state[i]); /* type NIL until decoded */
    for (uint32_t i = 0; i < nt; i++) {
        const weir_ckpt_task_t *t = &m->tasks[i];
        if (t->vertex >= v->n_vertices || t->subtask >= v->parallelism[t->vertex]) {
            free(keys);
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                           "task %u-%u: the job has no such subtask (%u vertices)", t->vertex,
                           t->subtask, v->n_vertices);
            goto fail;
        }
        keys[i] = (task_key_t){t->vertex, t->subtask, i};
    }
    qsort(keys, nt, sizeof *keys, cmp_task_key);
    for (uint32_t i = 0; i < nt; i++) {
        if (i && cmp_task_key(&keys[i], &keys[i - 1]) == 0) {
            rc = weir_errf(errstr, errlen, WEIR_ECORRUPT, "task %u-%u is listed twice",
                           keys[i].vertex, keys[i].subtask);
            free(keys);
            goto fail;
        }
        v->order[i] = keys[i].index;
    }
    free(keys);
    for (uint32_t i = 0; i < nt; i++) {
        const weir_ckpt_task_t *t = &m->tasks[i];
        uint32_t len = v->chain_len[t->vertex];
        if (t->op_state) {
            size_t off = 0;
            if (!weir__sp_msgpack_sane(t->op_state, t->op_state_len) ||
                msgpack_unpack_next(&v->op_state[i], (const char *)t->op_state, t->op_state_len,
                                    &off) != MSGPACK_UNPACK_SUCCESS ||
                off != t->op_state_len || v->op_state[i].data.type != MSGPACK_OBJECT_ARRAY ||
                v->op_state[i].data.via.array.size != len) {
                rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                               "task %u-%u: the operator state is not one msgpack array of %u "
                               "entries (one per operator of its chain)",
                               t->vertex, t->subtask, len);
                goto fail;
            }
        }
        if (t->keyed) {
            json_error_t jerr;
            v->handle[i] = json_loads(t->keyed, 0, &jerr);
            if (!json_is_object(v->handle[i])) {
                rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                               "task %u-%u: the keyed-state handle is not a JSON object", t->vertex,
                               t->subtask);
                goto fail;
            }
            const weir_ckpt_op_t *head = &v->ops[v->by_pos[v->voff[t->vertex]]];
            if (!head->keyed) {
                rc = weir_errf(errstr, errlen, WEIR_ECORRUPT,
                               "task %u-%u has keyed state, but the head of its chain ('%s') is "
                               "not keyed",
                               t->vertex, t->subtask, op_name(head));
                goto fail;
            }
        }
    }
    return 0;
fail:
    if (rc == WEIR_ENOMEM)
        weir_fmt(errstr, errlen, "out of memory");
    weir__sp_view_free(v);
    return rc;
}

void weir__sp_view_tasks(const weir__sp_view_t *v, uint32_t vertex, uint32_t *first,
                         uint32_t *count) {
    /* lower bounds of vertex and vertex + 1 in the sorted order */
    uint32_t n = v->m->n_tasks, lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v->m->tasks[v->order[mid]].vertex < vertex)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint32_t end = lo;
    hi = n;
    while (end < hi) {
        uint32_t mid = end + (hi - end) / 2;
        if (v->m->tasks[v->order[mid]].vertex <= vertex)
            end = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    *count = end - lo;
}

const msgpack_object *weir__sp_view_op_state(const weir__sp_view_t *v, uint32_t task,
                                             uint32_t index) {
    const msgpack_object *a = &v->op_state[task].data;
    if (a->type != MSGPACK_OBJECT_ARRAY || index >= a->via.array.size)
        return NULL;
    const msgpack_object *e = &a->via.array.ptr[index];
    return e->type == MSGPACK_OBJECT_NIL ? NULL : e;
}
