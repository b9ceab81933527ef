/* Tests of savepoint/plan.c: matching by uid (and by node id for operators without uid when the
 * shape is unchanged), every status and every refusal message, the operator-state bundles (decoded
 * with msgpack-c and checked element by element: own state at an unchanged parallelism, the union
 * otherwise, nil subtasks left out, chains that changed), the keyed restore documents for rescales
 * 2->3, 3->1, 4->2 (and odd max parallelisms) checked against a brute-force computation over every
 * key group written here (Flink's owner formula, not weir_keygroup_range), finished subtasks
 * (op_state, no keyed handle), vertices rescaled while others are not, version 1 metadata with
 * the old graph, metadata that contradicts its operators, and the report's exact text (the example
 * in savepoint/README.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/graph.h"
#include "savepoint/metadata.h"
#include "savepoint/plan.h"
#include "testutil.h"

static const char *JOB = "0123456789abcdef0123456789abcdef";
static const char *BASE = "/sp/savepoint-012345-abcdefabcdef";

/* ---- graphs -------------------------------------------------------------------------------- */

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx, (void)in, (void)udata;
}
static uint32_t key_fn(const weir_record_t *in, void *key_out, void *udata) {
    (void)in, (void)key_out, (void)udata;
    return 0;
}

static weir_job_t *finalize(weir_job_t *job) {
    char err[512] = "";
    if (weir_graph_finalize(job, err, sizeof err) != 0)
        fail_msg("finalize: %s", err);
    return job;
}

/* Options of the graph builder below. */
typedef struct shape {
    uint32_t max_par;
    uint32_t p_src, p_count; /* the sink has the count's parallelism (chained) */
    bool kafka_src;          /* a Kafka source instead of the file source */
    bool no_count;           /* the count and sink are left out: src -> print */
    bool no_out;             /* the sink "out" is replaced by a print sink */
    bool list_count;         /* state "count" is a list state */
    bool extra;              /* a second keyed operator "extra" after the source */
    bool parse;              /* a map "parse" (no uid) chained after the source */
    int64_t ttl_seen;        /* time to live of map state "seen" (0 = none) */
    bool no_seen;            /* the count does not declare map state "seen" */
} shape_t;

/* src -> [parse ->] key_by -> count (value "count", map "seen") -> out (chained with count);
 * vertex 0 = [src (, parse)], vertex 1 = [count, out] */
static weir_job_t *job_of(const shape_t *sh) {
    weir_job_t *job = weir_graph_new("wordcount", sh->p_src ? sh->p_src : 1);
    weir_job_set_max_parallelism(job, sh->max_par ? sh->max_par : 128);
    const char *kopts[] = {"bootstrap.servers", "localhost:1", "topic", "t", NULL};
    weir_stream_t *s = sh->kafka_src ? weir_source_kafka(job, "src", kopts)
                                     : weir_source_file(job, "src", "/in", 0);
    weir_set_parallelism(weir_set_uid(s, "src"), sh->p_src ? sh->p_src : 1);
    if (sh->parse)
        s = weir_map(s, "parse", map_fn, NULL);
    if (sh->no_count) {
        weir_sink_print(s, "print");
        return finalize(job);
    }
    weir_stream_t *c = weir_process(weir_key_by(s, key_fn, NULL), "count", map_fn, NULL);
    weir_set_parallelism(weir_set_uid(c, "count"), sh->p_count ? sh->p_count : 1);
    if (sh->list_count)
        weir_list_state(c, "count");
    else
        weir_value_state(c, "count");
    weir_state_id seen = sh->no_seen ? 0 : weir_map_state(c, "seen");
    if (sh->ttl_seen && !sh->no_seen)
        weir_state_set_ttl(c, seen, sh->ttl_seen, WEIR_TTL_ON_CREATE_AND_WRITE);
    weir_stream_t *o = sh->no_out ? weir_sink_print(c, "print") : weir_sink_file(c, "out", "/out");
    if (!sh->no_out)
        weir_set_uid(o, "out");
    weir_set_parallelism(o, sh->p_count ? sh->p_count : 1);
    if (sh->extra) {
        weir_stream_t *x = weir_process(weir_key_by(s, key_fn, NULL), "extra", map_fn, NULL);
        weir_set_parallelism(weir_set_uid(x, "extra"), 1);
        weir_value_state(x, "n");
        weir_set_parallelism(weir_sink_blackhole(x, "drop"), 1);
    }
    return finalize(job);
}

/* ---- old metadata -------------------------------------------------------------------------- */

/* The value task (v, s) packs for chain position k: -1 = nil. */
typedef int64_t (*state_fn)(const weir_job_t *g, uint32_t v, uint32_t s, uint32_t k);

static bool stateful_kind(weir_op_kind_t kind) {
    return weir_op_is_source(kind) || kind == WEIR_OP_SINK_FILE || kind == WEIR_OP_SINK_KAFKA;
}

static int64_t state_value(uint32_t v, uint32_t s, uint32_t k) {
    return 1000 * (int64_t)v + 100 * (int64_t)s + k + 1;
}

/* Sources and 2PC sinks have state in every subtask, other operators nil. */
static int64_t default_state(const weir_job_t *g, uint32_t v, uint32_t s, uint32_t k) {
    return stateful_kind(g->nodes[g->vertices[v].nodes[k]].kind) ? state_value(v, s, k) : -1;
}

/* Whether task (v, s) of a keyed chain has a keyed handle. */
typedef bool (*keyed_fn)(uint32_t v, uint32_t s);

static char *handle_text(uint32_t v, uint32_t s) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"version\":1,\"checkpoint\":9,\"task\":\"%u-%u\",\"layout\":\"self-contained\","
             "\"shared\":[],\"private\":[{\"name\":\"MANIFEST-%u\",\"size\":%u}],"
             "\"max_parallelism\":128}",
             v, s, s, 10 + s);
    return strdup(buf);
}

/* The metadata of checkpoint 9 of @p g: every subtask, op_state per @p sf, keyed handles for
 * keyed chains unless @p kf says no. @p v2: with the operator list. */
static void old_meta(weir_ckpt_meta_t *m, const weir_job_t *g, bool v2, state_fn sf, keyed_fn kf) {
    memset(m, 0, sizeof *m);
    strcpy(m->job, JOB);
    m->id = 9;
    m->kind = WEIR_CK_SAVEPOINT;
    if (v2)
        assert_int_equal(weir_ckpt_meta_set_graph(m, g), 0);
    uint32_t n = 0;
    for (uint32_t v = 0; v < g->n_vertices; v++)
        n += g->vertices[v].parallelism;
    m->tasks = calloc(n, sizeof *m->tasks);
    for (uint32_t v = 0; v < g->n_vertices; v++) {
        const weir_vertex_t *vx = &g->vertices[v];
        for (uint32_t s = 0; s < vx->parallelism; s++) {
            weir_ckpt_task_t *t = &m->tasks[m->n_tasks++];
            t->vertex = v;
            t->subtask = s;
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, vx->n_nodes);
            for (uint32_t k = 0; k < vx->n_nodes; k++) {
                int64_t x = (sf ? sf : default_state)(g, v, s, k);
                if (x < 0)
                    msgpack_pack_nil(&pk);
                else
                    msgpack_pack_int64(&pk, x);
            }
            t->op_state = (uint8_t *)sb.data;
            t->op_state_len = sb.size;
            const weir_node_t *head = &g->nodes[vx->nodes[0]];
            if (head->n_states && (!kf || kf(v, s)))
                t->keyed = handle_text(v, s);
        }
    }
}

static weir_restore_plan_t *plan_ok(const weir_ckpt_meta_t *m, const weir_job_t *old_graph,
                                    const weir_job_t *g, bool claim, bool allow) {
    weir_restore_plan_t *p = NULL;
    char err[1024] = "";
    int rc = weir_restore_plan_build(m, old_graph, g, BASE, claim, allow, &p, err, sizeof err);
    if (rc != 0)
        fail_msg("plan: %d %s", rc, err);
    assert_non_null(p);
    return p;
}

/* Builds a plan expected to be refused with exactly @p msg; returns it (for the report). */
static weir_restore_plan_t *plan_refused(const weir_ckpt_meta_t *m, const weir_job_t *g, bool allow,
                                         const char *msg) {
    weir_restore_plan_t *p = NULL;
    char err[1024] = "";
    int rc = weir_restore_plan_build(m, NULL, g, BASE, false, allow, &p, err, sizeof err);
    if (rc != WEIR_EINVAL || strcmp(err, msg) != 0)
        fail_msg("plan: %d '%s'\nwanted '%s'", rc, err, msg);
    assert_non_null(p);
    uint8_t *b = (uint8_t *)"x";
    size_t len = 1;
    char *k = (char *)"x";
    assert_int_equal(weir_restore_plan_subtask(p, 0, 0, &b, &len, &k), WEIR_EINVAL);
    assert_null(b);
    assert_int_equal(len, 0);
    assert_null(k);
    return p;
}

static void expect_status(const weir_restore_plan_t *p, const char *uid,
                          weir_restore_status_t want) {
    weir_restore_status_t st;
    assert_int_equal(weir_restore_plan_status(p, uid, &st), 0);
    assert_int_equal(st, want);
}

/* ---- bundles ------------------------------------------------------------------------------- */

/* One expected element of a bundle: nil when n == 0, else [old_par, [[sub[i], val[i]], ...]]. */
typedef struct elem {
    uint32_t old_par;
    uint32_t n;
    uint32_t sub[8];
    int64_t val[8];
} elem_t;

static void check_bundle(const uint8_t *b, size_t len, const elem_t *want, uint32_t n) {
    bool any = false;
    for (uint32_t k = 0; k < n; k++)
        any = any || want[k].n;
    if (!any) {
        assert_null(b);
        assert_int_equal(len, 0);
        return;
    }
    assert_non_null(b);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, (const char *)b, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(u.data.via.array.size, n);
    for (uint32_t k = 0; k < n; k++) {
        const msgpack_object *e = &u.data.via.array.ptr[k];
        if (!want[k].n) {
            assert_int_equal(e->type, MSGPACK_OBJECT_NIL);
            continue;
        }
        assert_int_equal(e->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(e->via.array.size, 2);
        assert_int_equal(e->via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(e->via.array.ptr[0].via.u64, want[k].old_par);
        const msgpack_object *pairs = &e->via.array.ptr[1];
        assert_int_equal(pairs->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(pairs->via.array.size, want[k].n);
        for (uint32_t i = 0; i < want[k].n; i++) {
            const msgpack_object *pr = &pairs->via.array.ptr[i];
            assert_int_equal(pr->type, MSGPACK_OBJECT_ARRAY);
            assert_int_equal(pr->via.array.size, 2);
            assert_int_equal(pr->via.array.ptr[0].via.u64, want[k].sub[i]);
            assert_int_equal(pr->via.array.ptr[1].via.i64, want[k].val[i]);
        }
    }
    msgpack_unpacked_destroy(&u);
}

/* The bundle and keyed document of (v, s); the caller frees. */
static void subtask(const weir_restore_plan_t *p, uint32_t v, uint32_t s, uint8_t **b, size_t *len,
                    char **keyed) {
    assert_int_equal(weir_restore_plan_subtask(p, v, s, b, len, keyed), 0);
}

/* ---- key groups, the brute-force way ------------------------------------------------------- */

/* Flink's KeyGroupRangeAssignment.computeOperatorIndexForKeyGroup. */
static uint32_t owner(uint32_t kg, uint32_t par, uint32_t maxp) {
    return (uint32_t)((uint64_t)kg * par / maxp);
}

/* Checks new subtask k's keyed document: its range, and one source per old subtask owning a key
 * group of that range (except those in @p no_handle), each with its own range and handle. */
static void check_keyed_doc(const char *doc, uint32_t k, uint32_t p_old, uint32_t p_new,
                            uint32_t maxp, bool claim, const bool *no_handle) {
    int64_t lo = -1, hi = -1;
    for (uint32_t g = 0; g < maxp; g++)
        if (owner(g, p_new, maxp) == k) {
            if (lo < 0)
                lo = g;
            hi = g;
        }
    bool srcs[64] = {false};
    uint32_t n_src = 0;
    for (int64_t g = lo; lo >= 0 && g <= hi; g++) {
        uint32_t o = owner((uint32_t)g, p_old, maxp);
        if (!srcs[o] && !(no_handle && no_handle[o]))
            n_src++;
        srcs[o] = !(no_handle && no_handle[o]);
    }
    if (n_src == 0) {
        assert_null(doc);
        return;
    }
    assert_non_null(doc);
    json_error_t jerr;
    json_t *d = json_loads(doc, 0, &jerr);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "base")), BASE);
    assert_true(json_is_boolean(json_object_get(d, "claim")));
    assert_int_equal(json_is_true(json_object_get(d, "claim")), claim);
    assert_int_equal(json_integer_value(json_object_get(d, "max_parallelism")), maxp);
    json_t *r = json_object_get(d, "range");
    assert_int_equal(json_array_size(r), 2);
    assert_int_equal(json_integer_value(json_array_get(r, 0)), lo);
    assert_int_equal(json_integer_value(json_array_get(r, 1)), hi);
    json_t *sources = json_object_get(d, "sources");
    assert_int_equal(json_array_size(sources), n_src);
    size_t i = 0;
    for (uint32_t o = 0; o < p_old; o++) {
        if (!srcs[o])
            continue;
        json_t *src = json_array_get(sources, i++);
        int64_t a = -1, b = -1;
        for (uint32_t g = 0; g < maxp; g++)
            if (owner(g, p_old, maxp) == o) {
                if (a < 0)
                    a = g;
                b = g;
            }
        json_t *sr = json_object_get(src, "range");
        assert_int_equal(json_integer_value(json_array_get(sr, 0)), a);
        assert_int_equal(json_integer_value(json_array_get(sr, 1)), b);
        char *want_text = handle_text(1, o);
        json_t *want = json_loads(want_text, 0, &jerr);
        assert_true(json_equal(json_object_get(src, "handle"), want));
        json_decref(want);
        free(want_text);
    }
    /* exactly these members, in this order */
    const char *keys[] = {"base", "claim", "max_parallelism", "range", "sources"};
    size_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(d, key, val) {
        assert_true(n < 5);
        assert_string_equal(key, keys[n++]);
    }
    assert_int_equal(n, 5);
    json_decref(d);
}

/* The report as a string. */
static char *report_of(const weir_restore_plan_t *p) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    weir_restore_plan_report(p, f);
    fclose(f);
    return text;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_same_job(void **state) {
    (void)state;
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *g = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, g, true, NULL, NULL);
    weir_restore_plan_t *p = plan_ok(&m, NULL, g, true, false);
    weir_ckpt_meta_clear(&m); /* the plan owns copies */
    expect_status(p, "src", WEIR_RESTORE_RESTORED);
    expect_status(p, "count", WEIR_RESTORE_RESTORED);
    expect_status(p, "out", WEIR_RESTORE_RESTORED);
    weir_restore_status_t st;
    assert_int_equal(weir_restore_plan_status(p, "nope", &st), WEIR_ENOTFOUND);
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 0, s, &b, &len, &k);
        elem_t e0[] = {{2, 1, {s}, {state_value(0, s, 0)}}};
        check_bundle(b, len, e0, 1);
        assert_null(k); /* the source is not keyed */
        free(b);
        subtask(p, 1, s, &b, &len, &k);
        elem_t e1[] = {{0}, {2, 1, {s}, {state_value(1, s, 1)}}};
        check_bundle(b, len, e1, 2);
        check_keyed_doc(k, s, 2, 2, 128, true, NULL);
        free(b);
        free(k);
    }
    /* no such subtask */
    uint8_t *b;
    size_t len;
    char *k;
    assert_int_equal(weir_restore_plan_subtask(p, 2, 0, &b, &len, &k), WEIR_EINVAL);
    assert_int_equal(weir_restore_plan_subtask(p, 1, 2, &b, &len, &k), WEIR_EINVAL);
    weir_restore_plan_free(&p);
    assert_null(p);
    weir_restore_plan_free(&p);
    weir_restore_plan_free(NULL);
    weir_graph_destroy(&g);
}

/* Keyed documents and sink bundles of a rescale p_old -> p_new at max parallelism maxp. */
static void rescale(uint32_t p_old, uint32_t p_new, uint32_t maxp) {
    shape_t sh = {.max_par = maxp, .p_src = 1, .p_count = p_old};
    weir_job_t *old = job_of(&sh);
    sh.p_count = p_new;
    weir_job_t *g = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, NULL);
    weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
    weir_ckpt_meta_clear(&m);
    for (uint32_t s = 0; s < p_new; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 1, s, &b, &len, &k);
        /* the sink: the union of every old subtask's state */
        elem_t e[2] = {{0}, {p_old, p_old, {0}, {0}}};
        for (uint32_t i = 0; i < p_old; i++) {
            e[1].sub[i] = i;
            e[1].val[i] = state_value(1, i, 1);
        }
        if (p_old == p_new) {
            e[1].n = 1;
            e[1].sub[0] = s;
            e[1].val[0] = state_value(1, s, 1);
        }
        check_bundle(b, len, e, 2);
        check_keyed_doc(k, s, p_old, p_new, maxp, false, NULL);
        free(b);
        free(k);
    }
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);
    weir_graph_destroy(&old);
}

static void test_rescale_overlaps(void **state) {
    (void)state;
    const uint32_t cases[][2] = {{2, 3}, {3, 1}, {4, 2}, {1, 4}, {3, 3}, {5, 7}};
    const uint32_t maxps[] = {128, 7, 10, 64};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (size_t m = 0; m < sizeof maxps / sizeof *maxps; m++)
            if (cases[c][0] <= maxps[m] && cases[c][1] <= maxps[m])
                rescale(cases[c][0], cases[c][1], maxps[m]);
}

/* Old source subtask 1 has no state (nil). */
static int64_t src1_nil(const weir_job_t *g, uint32_t v, uint32_t s, uint32_t k) {
    if (v == 0 && s == 1)
        return -1;
    return default_state(g, v, s, k);
}

static void test_source_nil_in_some_subtasks(void **state) {
    (void)state;
    shape_t sh = {.p_src = 3, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, src1_nil, NULL);
    /* same parallelism: subtask 1 restores nothing (no bundle at all), the others their own */
    weir_restore_plan_t *p = plan_ok(&m, NULL, old, false, false);
    for (uint32_t s = 0; s < 3; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 0, s, &b, &len, &k);
        elem_t e = {3, s == 1 ? 0 : 1, {s}, {state_value(0, s, 0)}};
        check_bundle(b, len, &e, 1);
        free(b);
    }
    weir_restore_plan_free(&p);
    /* 3 -> 2: every new subtask gets old subtasks 0 and 2 */
    sh.p_src = 2;
    weir_job_t *g = job_of(&sh);
    p = plan_ok(&m, NULL, g, false, false);
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 0, s, &b, &len, &k);
        elem_t e = {3, 2, {0, 2}, {state_value(0, 0, 0), state_value(0, 2, 0)}};
        check_bundle(b, len, &e, 1);
        free(b);
    }
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
    weir_graph_destroy(&old);
}

/* The old job: src -> parse -> (rebalance) out, all with op state where stateful. */
static weir_job_t *chain_job(bool chained, bool with_map) {
    weir_job_t *job = weir_graph_new("chains", 2);
    weir_stream_t *s = weir_set_uid(weir_source_file(job, "src", "/in", 0), "src");
    if (with_map)
        s = weir_set_uid(weir_map(s, "m", map_fn, NULL), "m");
    if (!chained)
        s = weir_rebalance(s);
    weir_set_uid(weir_sink_file(s, "out", "/out"), "out");
    return finalize(job);
}

static void test_chain_changed(void **state) {
    (void)state;
    /* old: [src, m, out] in one chain; new: [src] and [out], then [src, m] and [out] */
    weir_job_t *old = chain_job(true, true);
    assert_int_equal(old->n_vertices, 1);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, NULL);
    for (int with_map = 0; with_map < 2; with_map++) {
        weir_job_t *g = chain_job(false, with_map);
        assert_int_equal(g->n_vertices, 2);
        weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
        for (uint32_t s = 0; s < 2; s++) {
            uint8_t *b;
            size_t len;
            char *k;
            subtask(p, 0, s, &b, &len, &k);
            elem_t e0[2] = {{2, 1, {s}, {state_value(0, s, 0)}}, {0}};
            check_bundle(b, len, e0, with_map ? 2 : 1);
            free(b);
            /* the sink's state came from position 2 of vertex 0; it is now alone in vertex 1 */
            subtask(p, 1, s, &b, &len, &k);
            elem_t e1 = {2, 1, {s}, {state_value(0, s, 2)}};
            check_bundle(b, len, &e1, 1);
            assert_null(k);
            free(b);
        }
        weir_restore_plan_free(&p);
        weir_graph_destroy(&g);
    }
    weir_ckpt_meta_clear(&m);
    /* and back: operators moved into one chain */
    weir_job_t *split = chain_job(false, false);
    old_meta(&m, split, true, NULL, NULL);
    weir_job_t *g = chain_job(true, true);
    weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
    weir_restore_status_t st;
    assert_int_equal(weir_restore_plan_status(p, "m", &st), WEIR_ENOTFOUND); /* stateless */
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 0, s, &b, &len, &k);
        elem_t e[3] = {
            {2, 1, {s}, {state_value(0, s, 0)}}, {0}, {2, 1, {s}, {state_value(1, s, 0)}}};
        check_bundle(b, len, e, 3);
        free(b);
    }
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
    weir_graph_destroy(&split);
    weir_graph_destroy(&old);
}

static void test_statuses(void **state) {
    (void)state;
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, NULL);
    char msg[1024];

    /* uid removed: count (keyed state) and out (sink state) */
    shape_t removed = {.p_src = 2, .no_count = true};
    weir_job_t *g = job_of(&removed);
    snprintf(msg, sizeof msg,
             "state of operator uid(s) 'count', 'out' in %s has no operator in the new job: pass "
             "--allowNonRestoredState to drop it",
             BASE);
    weir_restore_plan_t *p = plan_refused(&m, g, false, msg);
    expect_status(p, "src", WEIR_RESTORE_RESTORED);
    expect_status(p, "count", WEIR_RESTORE_DROPPED);
    expect_status(p, "out", WEIR_RESTORE_DROPPED);
    weir_restore_plan_free(&p);
    /* ... allowed */
    p = plan_ok(&m, NULL, g, false, true);
    expect_status(p, "count", WEIR_RESTORE_DROPPED);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* only the sink's uid removed (replaced by a print sink) */
    shape_t no_out = {.p_src = 2, .p_count = 2, .no_out = true};
    g = job_of(&no_out);
    snprintf(msg, sizeof msg,
             "state of operator uid(s) 'out' in %s has no operator in the new job: pass "
             "--allowNonRestoredState to drop it",
             BASE);
    p = plan_refused(&m, g, false, msg);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* uid added */
    shape_t added = {.p_src = 2, .p_count = 2, .extra = true};
    g = job_of(&added);
    p = plan_ok(&m, NULL, g, false, false);
    expect_status(p, "extra", WEIR_RESTORE_NEW);
    expect_status(p, "count", WEIR_RESTORE_RESTORED);
    /* a new keyed operator restores nothing */
    uint32_t xv = weir_graph_vertex_of(g, g->n_nodes - 2)->id;
    uint8_t *b;
    size_t len;
    char *k;
    subtask(p, xv, 0, &b, &len, &k);
    assert_null(b);
    assert_null(k);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* keyed state kind changed: refused even with allow */
    shape_t lists = {.p_src = 2, .p_count = 2, .list_count = true};
    g = job_of(&lists);
    const char *kind_msg =
        "operator uid 'count': state 'count' was a value state and is now a list state";
    p = plan_refused(&m, g, false, kind_msg);
    expect_status(p, "count", WEIR_RESTORE_INCOMPATIBLE);
    weir_restore_plan_free(&p);
    p = plan_refused(&m, g, true, kind_msg);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* operator kind changed for a stateful uid */
    shape_t kafka = {.p_src = 2, .p_count = 2, .kafka_src = true};
    g = job_of(&kafka);
    const char *src_msg = "operator uid 'src': was a source_file operator and is now a "
                          "source_kafka operator (state cannot move to another kind of operator)";
    p = plan_refused(&m, g, true, src_msg);
    expect_status(p, "src", WEIR_RESTORE_INCOMPATIBLE);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* max parallelism changed */
    shape_t maxp = {.max_par = 256, .p_src = 2, .p_count = 2};
    g = job_of(&maxp);
    p = plan_refused(&m, g, false,
                     "max parallelism 128 of the savepoint differs from the new job's 256: it is "
                     "fixed for a job's life");
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* everything at once: one line, every offender named */
    shape_t all = {.max_par = 256, .p_src = 2, .no_count = true, .kafka_src = true};
    g = job_of(&all);
    snprintf(msg, sizeof msg,
             "max parallelism 128 of the savepoint differs from the new job's 256: it is fixed "
             "for a job's life; %s; state of operator uid(s) 'count', 'out' in %s has no operator "
             "in the new job: pass --allowNonRestoredState to drop it",
             src_msg, BASE);
    p = plan_refused(&m, g, false, msg);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&old);
}

/* State TTL: the savepoint metadata records it (through encode/decode); adding or removing a
 * state's time to live is refused (the stored layout differs), changing its duration is not. */
static void test_state_ttl(void **state) {
    (void)state;
    for (int old_ttl = 0; old_ttl < 2; old_ttl++) {
        shape_t sh = {.p_src = 2, .p_count = 2, .ttl_seen = old_ttl ? 1000 : 0};
        weir_job_t *old = job_of(&sh);
        weir_ckpt_meta_t m0, m;
        old_meta(&m0, old, true, NULL, NULL);
        char *text;
        size_t len;
        char err[512];
        assert_int_equal(weir_ckpt_meta_encode(&m0, &text, &len), 0);
        assert_int_equal(weir_ckpt_meta_decode(text, len, &m, err, sizeof err), 0);
        int64_t seen_ttl = -1; /* as decoded */
        for (uint32_t i = 0; i < m.n_ops; i++)
            for (uint32_t k = 0; k < m.ops[i].n_states; k++)
                if (strcmp(m.ops[i].states[k].name, "seen") == 0)
                    seen_ttl = m.ops[i].states[k].ttl_ms;
        assert_int_equal(seen_ttl, old_ttl ? 1000 : 0);
        free(text);
        weir_ckpt_meta_clear(&m0);
        for (int new_ttl = 0; new_ttl < 2; new_ttl++) {
            shape_t nsh = {.p_src = 2, .p_count = 2, .ttl_seen = new_ttl ? 5000 : 0};
            weir_job_t *g = job_of(&nsh);
            weir_restore_plan_t *p;
            if (old_ttl == new_ttl) {
                p = plan_ok(&m, NULL, g, false, false);
                expect_status(p, "count", WEIR_RESTORE_RESTORED);
            } else {
                char msg[512];
                snprintf(msg, sizeof msg,
                         "operator uid 'count': state 'seen' %s time to live and now %s (the "
                         "stored values %s expiry time; keep the state's TTL setting or rename "
                         "the state)",
                         old_ttl ? "had a" : "had no", new_ttl ? "has one" : "has none",
                         old_ttl ? "carry an" : "carry no");
                p = plan_refused(&m, g, true, msg);
                expect_status(p, "count", WEIR_RESTORE_INCOMPATIBLE);
            }
            weir_restore_plan_free(&p);
            weir_graph_destroy(&g);
        }
        weir_ckpt_meta_clear(&m);
        weir_graph_destroy(&old);
    }
}

/* Sinks without state anywhere (nil in every subtask). */
static int64_t no_sink_state(const weir_job_t *g, uint32_t v, uint32_t s, uint32_t k) {
    return weir_op_is_sink(g->nodes[g->vertices[v].nodes[k]].kind) ? -1 : default_state(g, v, s, k);
}

static bool no_keyed(uint32_t v, uint32_t s) {
    (void)v, (void)s;
    return false;
}

static void test_stateless_uid_removed(void **state) {
    (void)state;
    /* an old uid without state in any subtask may go without --allowNonRestoredState */
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, no_sink_state, NULL);
    shape_t no_out = {.p_src = 2, .p_count = 2, .no_out = true};
    weir_job_t *g = job_of(&no_out);
    weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
    weir_restore_status_t st;
    assert_int_equal(weir_restore_plan_status(p, "out", &st), WEIR_ENOTFOUND);
    weir_restore_plan_free(&p);
    /* the other way round: a stateful new operator whose old uid had no state is new */
    p = plan_ok(&m, NULL, old, false, false);
    expect_status(p, "out", WEIR_RESTORE_NEW);
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    /* a keyed operator whose every subtask finished (no keyed handle anywhere) has no state */
    old_meta(&m, old, true, no_sink_state, no_keyed);
    shape_t no_count = {.p_src = 2, .no_count = true};
    weir_job_t *g2 = job_of(&no_count);
    p = plan_ok(&m, NULL, g2, false, false);
    assert_int_equal(weir_restore_plan_status(p, "count", &st), WEIR_ENOTFOUND);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g2);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
    weir_graph_destroy(&old);
}

/* A keyed state the new operator no longer declares (renamed, removed, or an operator's internal
 * layout changed) would lose its values: refused like a removed uid, unless allowed. */
static void test_keyed_state_removed(void **state) {
    (void)state;
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, NULL);
    shape_t nsh = {.p_src = 2, .p_count = 2, .no_seen = true};
    weir_job_t *g = job_of(&nsh);
    char msg[1024];
    snprintf(msg, sizeof msg,
             "keyed state 'seen' (map) of operator uid 'count' in %s is not declared by the new "
             "job: pass --allowNonRestoredState to drop it",
             BASE);
    weir_restore_plan_t *p = plan_refused(&m, g, false, msg);
    weir_restore_plan_free(&p);
    p = plan_ok(&m, NULL, g, false, true);
    expect_status(p, "count", WEIR_RESTORE_RESTORED);
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    /* an operator that kept no keyed state (every subtask finished) drops nothing: it starts
     * empty */
    old_meta(&m, old, true, NULL, no_keyed);
    p = plan_ok(&m, NULL, g, false, false);
    expect_status(p, "count", WEIR_RESTORE_NEW);
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
    weir_graph_destroy(&old);
}

/* Old keyed subtask 1 finished: its final snapshot has operator state but no keyed handle. */
static bool finished1(uint32_t v, uint32_t s) {
    (void)v;
    return s != 1;
}

static void test_finished_subtasks(void **state) {
    (void)state;
    shape_t sh = {.p_src = 1, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, finished1);
    bool no_handle[2] = {false, true};
    for (uint32_t p_new = 1; p_new <= 3; p_new++) {
        sh.p_count = p_new;
        weir_job_t *g = job_of(&sh);
        weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
        for (uint32_t s = 0; s < p_new; s++) {
            uint8_t *b;
            size_t len;
            char *k;
            subtask(p, 1, s, &b, &len, &k);
            check_keyed_doc(k, s, 2, p_new, 128, false, no_handle);
            /* the sink's op state of subtask 1 is still there */
            elem_t e[2] = {{0}, {2, p_new == 2 ? 1 : 2, {0}, {0}}};
            if (p_new == 2) {
                e[1].sub[0] = s;
                e[1].val[0] = state_value(1, s, 1);
            } else {
                e[1].sub[1] = 1;
                e[1].val[0] = state_value(1, 0, 1);
                e[1].val[1] = state_value(1, 1, 1);
            }
            check_bundle(b, len, e, 2);
            free(b);
            free(k);
        }
        weir_restore_plan_free(&p);
        weir_graph_destroy(&g);
    }
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&old);
}

static void test_one_vertex_rescaled(void **state) {
    (void)state;
    /* the source keeps parallelism 2, the keyed vertex goes 2 -> 3 */
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, NULL);
    sh.p_count = 3;
    weir_job_t *g = job_of(&sh);
    weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 0, s, &b, &len, &k);
        elem_t e = {2, 1, {s}, {state_value(0, s, 0)}};
        check_bundle(b, len, &e, 1);
        free(b);
    }
    for (uint32_t s = 0; s < 3; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 1, s, &b, &len, &k);
        check_keyed_doc(k, s, 2, 3, 128, false, NULL);
        elem_t e[2] = {{0}, {2, 2, {0, 1}, {state_value(1, 0, 1), state_value(1, 1, 1)}}};
        check_bundle(b, len, e, 2);
        free(b);
        free(k);
    }
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
    weir_graph_destroy(&old);
}

/* The map "parse" (no uid) had operator state in the old job. */
static int64_t parse_state(const weir_job_t *g, uint32_t v, uint32_t s, uint32_t k) {
    if (g->nodes[g->vertices[v].nodes[k]].kind == WEIR_OP_MAP)
        return 7000 + s;
    return default_state(g, v, s, k);
}

static void test_version1_and_node_ids(void **state) {
    (void)state;
    shape_t sh = {.p_src = 2, .p_count = 2, .parse = true};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, false, parse_state, NULL); /* version 1: no operator list */
    assert_int_equal(m.n_ops, 0);
    /* without the old graph: refused */
    weir_restore_plan_t *p = NULL;
    char err[1024] = "";
    assert_int_equal(weir_restore_plan_build(&m, NULL, old, BASE, true, false, &p, err, sizeof err),
                     WEIR_EINVAL);
    assert_null(p);
    char msg[1024];
    snprintf(msg, sizeof msg,
             "%s/_metadata (checkpoint 9) lists no operators (format version 1, written before "
             "savepoints): only the job that wrote it can restore it",
             BASE);
    assert_string_equal(err, msg);
    /* with it (the same job restoring its own checkpoint), at another parallelism: uids match,
     * the map without uid matches by node id */
    sh.p_count = 3;
    weir_job_t *g = job_of(&sh);
    p = plan_ok(&m, old, g, true, false);
    char *text = report_of(p);
    assert_non_null(strstr(text, "node 1, no uid (map 'parse', parallelism 2 -> 2): restored\n"
                                 "    matched by node id 1: the old operator has no uid and the "
                                 "job's shape is unchanged\n    operator state of old subtasks "
                                 "0..1: each new subtask restores its own\n"));
    free(text);
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 0, s, &b, &len, &k);
        elem_t e[2] = {{2, 1, {s}, {state_value(0, s, 0)}}, {2, 1, {s}, {7000 + s}}};
        check_bundle(b, len, e, 2);
        free(b);
    }
    for (uint32_t s = 0; s < 3; s++) {
        uint8_t *b;
        size_t len;
        char *k;
        subtask(p, 1, s, &b, &len, &k);
        check_keyed_doc(k, s, 2, 3, 128, true, NULL);
        free(b);
        free(k);
    }
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);
    /* another shape (the map is gone): the map's state is dropped, named by node */
    sh.parse = false;
    g = job_of(&sh);
    assert_int_equal(weir_restore_plan_build(&m, old, g, BASE, false, false, &p, err, sizeof err),
                     WEIR_EINVAL);
    snprintf(msg, sizeof msg,
             "state of operator uid(s) 'parse' (node 1, no uid) in %s has no operator in the new "
             "job: pass --allowNonRestoredState to drop it",
             BASE);
    assert_string_equal(err, msg);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);
    /* an old graph that is not the one that wrote the checkpoint (other chains) */
    weir_job_t *other = job_of(&sh);
    assert_int_equal(
        weir_restore_plan_build(&m, other, other, BASE, false, false, &p, err, sizeof err),
        WEIR_ECORRUPT);
    assert_null(p);
    snprintf(msg, sizeof msg,
             "checkpoint 9 in %s does not match its operators: task 0-0: the operator state is "
             "not one msgpack array of 1 entries (one per operator of its chain)",
             BASE);
    assert_string_equal(err, msg);
    weir_graph_destroy(&other);
    weir_ckpt_meta_clear(&m);

    /* version 2 written by a job whose source had no uid; the new job gives it one */
    sh.parse = true;
    old_meta(&m, old, true, parse_state, NULL);
    free(m.ops[0].uid);
    m.ops[0].uid = NULL;
    p = plan_ok(&m, NULL, old, false, false);
    expect_status(p, "src", WEIR_RESTORE_RESTORED);
    uint8_t *b;
    size_t len;
    char *k;
    subtask(p, 0, 1, &b, &len, &k);
    elem_t e[2] = {{2, 1, {1}, {state_value(0, 1, 0)}}, {2, 1, {1}, {7001}}};
    check_bundle(b, len, e, 2);
    free(b);
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&old);
}

/* Two pipelines: file source "a" -> file sink "oa", file source "b" -> file sink "ob". */
static weir_job_t *two_pipelines(void) {
    weir_job_t *job = weir_graph_new("two", 1);
    weir_set_uid(weir_sink_file(weir_set_uid(weir_source_file(job, "A", "/a", 0), "a"), "oA", "/x"),
                 "oa");
    weir_set_uid(weir_sink_file(weir_set_uid(weir_source_file(job, "B", "/b", 0), "b"), "oB", "/y"),
                 "ob");
    return finalize(job);
}

static void test_node_id_never_takes_a_matched_node(void **state) {
    (void)state;
    /* the old job's node 0 has no uid and node 2 has uid 'a', which the new job's node 0 has:
     * node 0 is taken by uid, so old node 0 is not matched by its id (it is dropped) */
    weir_job_t *g = two_pipelines();
    weir_ckpt_meta_t m;
    old_meta(&m, g, true, NULL, NULL);
    free(m.ops[0].uid);
    m.ops[0].uid = NULL;
    free(m.ops[2].uid);
    m.ops[2].uid = strdup("a");
    char msg[1024];
    snprintf(msg, sizeof msg,
             "state of operator uid(s) 'A' (node 0, no uid) in %s has no operator in the new job: "
             "pass --allowNonRestoredState to drop it",
             BASE);
    weir_restore_plan_t *p = plan_refused(&m, g, false, msg);
    weir_restore_plan_free(&p);
    p = plan_ok(&m, NULL, g, false, true);
    expect_status(p, "a", WEIR_RESTORE_RESTORED);
    expect_status(p, "b", WEIR_RESTORE_NEW);
    /* new node 0 ('a') restores what old node 2 (vertex 1) had */
    uint8_t *b;
    size_t len;
    char *k;
    subtask(p, 0, 0, &b, &len, &k);
    elem_t e[2] = {{1, 1, {0}, {state_value(1, 0, 0)}}, {1, 1, {0}, {state_value(0, 0, 1)}}};
    check_bundle(b, len, e, 2);
    free(b);
    weir_restore_plan_free(&p);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
}

static void test_corrupt_metadata(void **state) {
    (void)state;
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *g = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, g, true, NULL, NULL);
    m.tasks[0].subtask = 5;
    weir_restore_plan_t *p = NULL;
    char err[1024] = "", msg[1024];
    assert_int_equal(weir_restore_plan_build(&m, NULL, g, BASE, false, false, &p, err, sizeof err),
                     WEIR_ECORRUPT);
    assert_null(p);
    snprintf(msg, sizeof msg,
             "checkpoint 9 in %s does not match its operators: task 0-5: the job has no such "
             "subtask (2 vertices)",
             BASE);
    assert_string_equal(err, msg);
    m.tasks[0].subtask = 0;
    m.max_parallelism = 0;
    assert_int_equal(weir_restore_plan_build(&m, NULL, g, BASE, false, false, &p, err, sizeof err),
                     WEIR_ECORRUPT);
    assert_non_null(strstr(err, "its max parallelism is 0"));
    m.max_parallelism = 128;
    /* bad arguments */
    weir_job_t *raw = weir_graph_new("raw", 1);
    assert_int_equal(
        weir_restore_plan_build(&m, NULL, raw, BASE, false, false, &p, err, sizeof err),
        WEIR_EINVAL);
    assert_null(p);
    weir_graph_destroy(&raw);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&g);
}

/* The example of savepoint/README.md. */
static const char REPORT[] =
    "restore from /sp/savepoint-012345-abcdefabcdef: savepoint 9 of job "
    "0123456789abcdef0123456789abcdef, max parallelism 128\n"
    "new job 'wordcount': max parallelism 128\n"
    "uid 'src' (source_file 'src', parallelism 2 -> 2): restored\n"
    "    operator state of old subtasks 0..1: each new subtask restores its own\n"
    "uid 'count' (process 'count', parallelism 2 -> 3): restored\n"
    "    keyed state: 'count' (value) restored, 'seen' (map) restored\n"
    "    new subtask 0: groups 0-42 from old subtask 0\n"
    "    new subtask 1: groups 43-85 from old subtasks 0..1\n"
    "    new subtask 2: groups 86-127 from old subtask 1\n"
    "uid 'out' (sink_file 'out', parallelism 2 -> 3): restored\n"
    "    operator state of old subtasks 0..1: every new subtask receives all of them\n"
    "uid 'extra' (process 'extra', parallelism 1): new (starts empty)\n"
    "result: ok\n";

static void test_report(void **state) {
    (void)state;
    shape_t sh = {.p_src = 2, .p_count = 2};
    weir_job_t *old = job_of(&sh);
    weir_ckpt_meta_t m;
    old_meta(&m, old, true, NULL, NULL);
    sh.p_count = 3;
    sh.extra = true;
    weir_job_t *g = job_of(&sh);
    weir_restore_plan_t *p = plan_ok(&m, NULL, g, false, false);
    char *text = report_of(p);
    assert_string_equal(text, REPORT);
    free(text);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);

    /* refused: dropped and incompatible lines, the result line carries the refusal */
    shape_t bad = {.p_src = 2, .p_count = 2, .list_count = true, .no_out = true};
    g = job_of(&bad);
    char msg[1024];
    snprintf(msg, sizeof msg,
             "operator uid 'count': state 'count' was a value state and is now a list state; "
             "state of operator uid(s) 'out' in %s has no operator in the new job: pass "
             "--allowNonRestoredState to drop it",
             BASE);
    p = plan_refused(&m, g, false, msg);
    text = report_of(p);
    assert_non_null(strstr(text, "uid 'count' (process 'count', parallelism 2 -> 2): "
                                 "incompatible: state 'count' was a value state and is now a "
                                 "list state\n"));
    assert_non_null(strstr(text, "uid 'out' (sink_file 'out', parallelism 2): dropped (needs "
                                 "--allowNonRestoredState)\n"));
    char line[1200];
    snprintf(line, sizeof line, "result: refused: %s\n", msg);
    assert_non_null(strstr(text, line));
    free(text);
    weir_restore_plan_free(&p);
    weir_graph_destroy(&g);
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&old);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_job),
        cmocka_unit_test(test_rescale_overlaps),
        cmocka_unit_test(test_source_nil_in_some_subtasks),
        cmocka_unit_test(test_chain_changed),
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_state_ttl),
        cmocka_unit_test(test_stateless_uid_removed),
        cmocka_unit_test(test_keyed_state_removed),
        cmocka_unit_test(test_finished_subtasks),
        cmocka_unit_test(test_one_vertex_rescaled),
        cmocka_unit_test(test_version1_and_node_ids),
        cmocka_unit_test(test_node_id_never_takes_a_matched_node),
        cmocka_unit_test(test_corrupt_metadata),
        cmocka_unit_test(test_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
