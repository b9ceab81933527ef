/* Owns the _metadata format (metadata.h): base64 of operator state, the version 2 encoder, the
 * decoder of versions 1 and 2 (sha256 line, then JSON), and the operator list of a graph.
 *
 * Invariants: encode writes the current version only, with members in the documented order;
 * decode verifies the sha256 line before it parses anything, accepts exactly what the layout
 * allows (unknown operator or state kind names, out-of-range numbers and wrong types are
 * WEIR_ECORRUPT with one line naming the member) and leaves *m cleared on any error. It does not
 * check that tasks and operators agree (the restore planner does, savepoint/plan.c).
 *
 * Threading: pure functions, no state. */
#include "savepoint/metadata.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/util.h"
#include "runtime/graph/keygroup.h"

/* ---------------------------------------------------------------- base64 */

char *weir_ckpt_b64_encode(const uint8_t *data, size_t len) {
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    if (len > 0x7fffffff) {
        free(out);
        return NULL;
    }
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[n < 0 ? 0 : n] = 0;
    return out;
}

int weir_ckpt_b64_decode(const char *text, uint8_t **out, size_t *out_len) {
    size_t len = strlen(text);
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0 || len > 0x7ffffff0)
        return WEIR_ECORRUPT;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return WEIR_ENOMEM;
    int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        free(buf);
        return WEIR_ECORRUPT;
    }
    size_t pad = 0;
    if (len >= 1 && text[len - 1] == '=')
        pad++;
    if (len >= 2 && text[len - 2] == '=')
        pad++;
    *out = buf;
    *out_len = (size_t)n - pad;
    return 0;
}

/* ---------------------------------------------------------------- _metadata */

static void ops_free(weir_ckpt_op_t *ops, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        free(ops[i].uid);
        free(ops[i].name);
        for (uint32_t s = 0; s < ops[i].n_states; s++)
            free(ops[i].states[s].name);
        free(ops[i].states);
    }
    free(ops);
}

void weir_ckpt_meta_clear(weir_ckpt_meta_t *m) {
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n_tasks; i++) {
        free(m->tasks[i].op_state);
        free(m->tasks[i].keyed);
    }
    free(m->tasks);
    ops_free(m->ops, m->n_ops);
    memset(m, 0, sizeof *m);
}

/* strdup of a possibly NULL string; false on OOM. */
static bool dup_opt(const char *s, char **out) {
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

int weir_ckpt_meta_set_graph(weir_ckpt_meta_t *m, const weir_job_t *job) {
    if (!m || !job || !job->vertices || job->n_nodes == 0)
        return WEIR_EINVAL;
    weir_ckpt_op_t *ops = calloc(job->n_nodes, sizeof *ops);
    if (!ops)
        return WEIR_ENOMEM;
    for (uint32_t v = 0; v < job->n_vertices; v++) {
        const weir_vertex_t *vx = &job->vertices[v];
        for (uint32_t k = 0; k < vx->n_nodes; k++) {
            if (vx->nodes[k] >= job->n_nodes) {
                ops_free(ops, job->n_nodes);
                return WEIR_EINVAL;
            }
            const weir_node_t *nd = &job->nodes[vx->nodes[k]];
            weir_ckpt_op_t *op = &ops[vx->nodes[k]];
            op->kind = nd->kind;
            op->vertex = v;
            op->index = k;
            op->parallelism = nd->parallelism;
            op->keyed = nd->keyed;
            if (!dup_opt(nd->uid, &op->uid) || !dup_opt(nd->name, &op->name))
                goto oom;
            if (nd->n_states) {
                op->states = calloc(nd->n_states, sizeof *op->states);
                if (!op->states)
                    goto oom;
                op->n_states = nd->n_states;
                for (uint32_t s = 0; s < nd->n_states; s++) {
                    op->states[s].kind = nd->states[s].kind;
                    op->states[s].ttl_ms = nd->states[s].ttl_ms;
                    op->states[s].ttl_update = nd->states[s].ttl_update;
                    if (!dup_opt(nd->states[s].name, &op->states[s].name))
                        goto oom;
                }
            }
        }
    }
    ops_free(m->ops, m->n_ops);
    m->ops = ops;
    m->n_ops = job->n_nodes;
    m->max_parallelism = job->max_parallelism;
    return 0;
oom:
    ops_free(ops, job->n_nodes);
    return WEIR_ENOMEM;
}

static json_t *ops_to_json(const weir_ckpt_meta_t *m) {
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < m->n_ops; i++) {
        const weir_ckpt_op_t *op = &m->ops[i];
        json_t *states = json_array();
        for (uint32_t s = 0; states && s < op->n_states; s++) {
            json_t *st =
                json_pack("{s:s,s:s}", "name", op->states[s].name ? op->states[s].name : "", "kind",
                          weir_state_kind_name(op->states[s].kind));
            /* a TTL state's values carry an expiry (state/README.md): restore checks it */
            if (st && op->states[s].ttl_ms > 0 &&
                json_object_set_new(st, "ttl_ms", json_integer(op->states[s].ttl_ms)) != 0) {
                json_decref(st);
                st = NULL;
            }
            if (!st || json_array_append_new(states, st) != 0) {
                json_decref(states);
                states = NULL;
            }
        }
        json_t *o =
            states
                ? json_pack("{s:o,s:s,s:s,s:I,s:I,s:I,s:b,s:o}", "uid",
                            op->uid ? json_string(op->uid) : json_null(), "name",
                            op->name ? op->name : "", "kind", weir_op_kind_name(op->kind), "vertex",
                            (json_int_t)op->vertex, "index", (json_int_t)op->index, "parallelism",
                            (json_int_t)op->parallelism, "keyed", (int)op->keyed, "states", states)
                : NULL;
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

int weir_ckpt_meta_encode(const weir_ckpt_meta_t *m, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    int rc = WEIR_ENOMEM;
    json_t *tasks = json_array();
    json_t *ops = ops_to_json(m);
    json_t *root = NULL;
    char *text = NULL;
    if (!tasks || !ops)
        goto done;
    for (uint32_t i = 0; i < m->n_tasks; i++) {
        const weir_ckpt_task_t *t = &m->tasks[i];
        json_t *op = json_null(), *keyed = json_null();
        if (t->op_state) {
            char *b = weir_ckpt_b64_encode(t->op_state, t->op_state_len);
            if (!b)
                goto done;
            op = json_string(b);
            free(b);
        }
        if (t->keyed) {
            json_error_t jerr;
            keyed = json_loads(t->keyed, JSON_DECODE_ANY, &jerr);
            if (!keyed) {
                json_decref(op);
                rc = WEIR_EINVAL;
                goto done;
            }
        }
        json_t *o = json_pack("{s:I,s:I,s:o,s:o,s:I}", "vertex", (json_int_t)t->vertex, "subtask",
                              (json_int_t)t->subtask, "op_state", op, "keyed", keyed, "state_size",
                              (json_int_t)t->state_size);
        if (!o || json_array_append_new(tasks, o) != 0)
            goto done;
    }
    root = json_pack("{s:i,s:s,s:I,s:s,s:I,s:I,s:b,s:I,s:O,s:O}", "version", WEIR_CKPT_META_VERSION,
                     "job", m->job, "checkpoint", (json_int_t)m->id, "kind",
                     m->kind == WEIR_CK_CHECKPOINT ? "checkpoint" : "savepoint", "trigger_time",
                     (json_int_t)m->trigger_ms, "complete_time", (json_int_t)m->complete_ms,
                     "final", (int)m->final, "max_parallelism", (json_int_t)m->max_parallelism,
                     "operators", ops, "tasks", tasks);
    if (!root)
        goto done;
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        goto done;
    size_t body = strlen(text);
    char *buf = malloc(body + 1 + 7 + 64 + 2);
    if (!buf)
        goto done;
    memcpy(buf, text, body);
    buf[body++] = '\n';
    char hex[65];
    weir_sha256_hex(buf, body, hex);
    memcpy(buf + body, "sha256 ", 7);
    memcpy(buf + body + 7, hex, 64);
    buf[body + 71] = '\n';
    buf[body + 72] = 0;
    *out = buf;
    *out_len = body + 72;
    rc = 0;
done:
    free(text);
    json_decref(root);
    json_decref(ops);
    json_decref(tasks);
    return rc;
}

#define META "checkpoint metadata"

static int op_kind_of(const char *s) {
    for (int i = 0; s && i < WEIR_OP__COUNT; i++)
        if (strcmp(s, weir_op_kind_name((weir_op_kind_t)i)) == 0)
            return i;
    return -1;
}

static int state_kind_of(const char *s) {
    for (int i = WEIR_STATE_VALUE; s && i <= WEIR_STATE_REDUCING; i++)
        if (strcmp(s, weir_state_kind_name((weir_state_kind_t)i)) == 0)
            return i;
    return -1;
}

/* Version 2: "kind", "max_parallelism" and "operators" into @p m. */
static int decode_v2(const json_t *root, weir_ckpt_meta_t *m, char *errstr, size_t errlen) {
    const char *kind = NULL;
    int64_t mp = 0;
    const json_t *ops = NULL;
    if (weir_json_str(root, META, "kind", true, &kind, errstr, errlen) != 0 ||
        weir_json_int(root, META, "max_parallelism", true, 0, WEIR_MAX_MAX_PARALLELISM, 0, &mp,
                      errstr, errlen) != 0 ||
        weir_json_array(root, META, "operators", true, &ops, errstr, errlen) != 0)
        return WEIR_ECORRUPT;
    if (strcmp(kind, "checkpoint") == 0)
        m->kind = WEIR_CK_CHECKPOINT;
    else if (strcmp(kind, "savepoint") == 0)
        m->kind = WEIR_CK_SAVEPOINT;
    else
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "\"kind\" is '%.64s', not 'checkpoint' or 'savepoint'", kind);
    m->max_parallelism = (uint32_t)mp;
    size_t n = json_array_size(ops);
    if (n && mp == 0)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT,
                         "\"max_parallelism\" is 0 but there are operators");
    if (n > UINT32_MAX)
        return weir_errf(errstr, errlen, WEIR_ECORRUPT, "too many operators");
    if (n && !(m->ops = calloc(n, sizeof *m->ops)))
        return WEIR_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(ops, i);
        weir_ckpt_op_t *op = &m->ops[i];
        m->n_ops = (uint32_t)(i + 1);
        char what[64];
        weir_fmt(what, sizeof what, "operator %zu", i);
        const char *uid = NULL, *name = NULL, *k = NULL;
        int64_t v = 0, idx = 0, par = 0;
        const json_t *states = NULL;
        if (!json_is_object(o))
            return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s is not an object", what);
        if (weir_json_str(o, what, "uid", false, &uid, errstr, errlen) != 0 ||
            weir_json_str(o, what, "name", true, &name, errstr, errlen) != 0 ||
            weir_json_str(o, what, "kind", true, &k, errstr, errlen) != 0 ||
            weir_json_int(o, what, "vertex", true, 0, UINT32_MAX, 0, &v, errstr, errlen) != 0 ||
            weir_json_int(o, what, "index", true, 0, UINT32_MAX, 0, &idx, errstr, errlen) != 0 ||
            weir_json_int(o, what, "parallelism", true, 1, WEIR_MAX_MAX_PARALLELISM, 0, &par,
                          errstr, errlen) != 0 ||
            weir_json_bool(o, what, "keyed", true, false, &op->keyed, errstr, errlen) != 0 ||
            weir_json_array(o, what, "states", true, &states, errstr, errlen) != 0)
            return WEIR_ECORRUPT;
        int kind_i = op_kind_of(k);
        if (kind_i < 0)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s: unknown kind '%.64s'", what, k);
        op->kind = (weir_op_kind_t)kind_i;
        op->vertex = (uint32_t)v;
        op->index = (uint32_t)idx;
        op->parallelism = (uint32_t)par;
        if (!dup_opt(uid, &op->uid) || !dup_opt(name, &op->name))
            return WEIR_ENOMEM;
        size_t ns = json_array_size(states);
        if (ns > UINT32_MAX)
            return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s: too many states", what);
        if (ns && !(op->states = calloc(ns, sizeof *op->states)))
            return WEIR_ENOMEM;
        for (size_t s = 0; s < ns; s++) {
            const json_t *so = json_array_get(states, s);
            const char *sn = NULL, *sk = NULL;
            char swhat[96];
            weir_fmt(swhat, sizeof swhat, "%s: state %zu", what, s);
            if (!json_is_object(so))
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s is not an object", swhat);
            if (weir_json_str(so, swhat, "name", true, &sn, errstr, errlen) != 0 ||
                weir_json_str(so, swhat, "kind", true, &sk, errstr, errlen) != 0)
                return WEIR_ECORRUPT;
            int sk_i = state_kind_of(sk);
            if (sk_i < 0)
                return weir_errf(errstr, errlen, WEIR_ECORRUPT, "%s: unknown kind '%.64s'", swhat,
                                 sk);
            op->states[s].kind = (weir_state_kind_t)sk_i;
            if (weir_json_int(so, swhat, "ttl_ms", false, 0, WEIR_MAX_STATE_TTL_MS, 0,
                              &op->states[s].ttl_ms, errstr, errlen) != 0)
                return WEIR_ECORRUPT;
            if (!(op->states[s].name = strdup(sn)))
                return WEIR_ENOMEM;
            op->n_states = (uint32_t)(s + 1);
        }
    }
    return 0;
}

int weir_ckpt_meta_decode(const char *data, size_t len, weir_ckpt_meta_t *m, char *errstr,
                          size_t errlen) {
    memset(m, 0, sizeof *m);
    /* the last line: "sha256 <64 hex>" (+ optional newline) */
    size_t end = len;
    if (end > 0 && data[end - 1] == '\n')
        end--;
    if (end < 71 || memcmp(data + end - 71, "sha256 ", 7) != 0 ||
        (end > 71 && data[end - 72] != '\n')) {
        weir_fmt(errstr, errlen, "no final sha256 line (truncated?)");
        return WEIR_ECORRUPT;
    }
    size_t body = end - 71;
    char expect[65], actual[65];
    memcpy(expect, data + end - 64, 64);
    expect[64] = 0;
    if (strspn(expect, "0123456789abcdef") != 64) {
        weir_fmt(errstr, errlen, "the sha256 line does not end with 64 lowercase hex digits");
        return WEIR_ECORRUPT;
    }
    weir_sha256_hex(data, body, actual);
    if (strcmp(expect, actual) != 0) {
        weir_fmt(errstr, errlen, "sha256 mismatch: content hashes to %.12s..., line says %.12s...",
                 actual, expect);
        return WEIR_ECORRUPT;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, body, 0, &jerr);
    if (!root) {
        weir_fmt(errstr, errlen, "not JSON: %s", weir_json_error_text(&jerr));
        return WEIR_ECORRUPT;
    }
    int rc = WEIR_ECORRUPT;
    uint64_t version = 0, u = 0;
    const char *job = NULL;
    const json_t *tasks = NULL;
    if (weir_json_u64(root, META, "version", true, 0, &version, NULL, 0) == 0 &&
        (version < 1 || version > WEIR_CKPT_META_VERSION)) {
        weir_fmt(errstr, errlen, "unsupported version %llu (this weir reads versions 1 to %d)",
                 (unsigned long long)version, WEIR_CKPT_META_VERSION);
        goto done;
    }
    if (version == 0 || weir_json_str(root, META, "job", true, &job, NULL, 0) != 0 ||
        strlen(job) > 32 ||
        weir_json_u64(root, META, "checkpoint", true, 0, &m->id, NULL, 0) != 0 ||
        weir_json_array(root, META, "tasks", true, &tasks, NULL, 0) != 0) {
        weir_fmt(errstr, errlen, "missing or bad version/job/checkpoint/tasks");
        goto done;
    }
    weir_fmt(m->job, sizeof m->job, "%s", job);
    /* optional: a bad value reads as absent (0 / false) */
    if (weir_json_u64(root, META, "trigger_time", false, 0, &u, NULL, 0) == 0)
        m->trigger_ms = (int64_t)u;
    if (weir_json_u64(root, META, "complete_time", false, 0, &u, NULL, 0) == 0)
        m->complete_ms = (int64_t)u;
    weir_json_bool(root, META, "final", false, false, &m->final, NULL, 0);
    if (version >= 2 && (rc = decode_v2(root, m, errstr, errlen)) != 0)
        goto done;
    rc = WEIR_ECORRUPT;
    size_t n = json_array_size(tasks);
    if (n) {
        m->tasks = calloc(n, sizeof *m->tasks);
        if (!m->tasks) {
            rc = WEIR_ENOMEM;
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tasks, i);
        weir_ckpt_task_t *dt = &m->tasks[i];
        m->n_tasks = (uint32_t)(i + 1);
        int64_t v, s;
        if (weir_json_int(t, META, "vertex", true, 0, UINT32_MAX, 0, &v, NULL, 0) != 0 ||
            weir_json_int(t, META, "subtask", true, 0, UINT32_MAX, 0, &s, NULL, 0) != 0) {
            weir_fmt(errstr, errlen, "task %zu: missing vertex/subtask", i);
            goto done;
        }
        dt->vertex = (uint32_t)v;
        dt->subtask = (uint32_t)s;
        weir_json_u64(t, META, "state_size", false, 0, &dt->state_size, NULL, 0);
        const char *op = NULL;
        if (weir_json_str(t, META, "op_state", false, &op, NULL, 0) != 0) {
            weir_fmt(errstr, errlen, "task %zu: op_state is not a string", i);
            goto done;
        }
        if (op) {
            int r = weir_ckpt_b64_decode(op, &dt->op_state, &dt->op_state_len);
            if (r != 0) {
                weir_fmt(errstr, errlen, "task %zu: op_state is not base64", i);
                rc = r;
                goto done;
            }
        }
        json_t *keyed = json_object_get(t, "keyed");
        if (keyed && !json_is_null(keyed)) {
            dt->keyed = json_dumps(keyed, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
            if (!dt->keyed) {
                rc = WEIR_ENOMEM;
                goto done;
            }
        }
    }
    rc = 0;
done:
    json_decref(root);
    if (rc != 0)
        weir_ckpt_meta_clear(m);
    return rc;
}
