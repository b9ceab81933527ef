/* libFuzzer target: a _metadata file (savepoint/metadata.h) from the bytes on disk to the restore
 * plan of a new job (savepoint/plan.h) and every subtask's restore fields.
 *
 * What it calls and why there: a savepoint or retained checkpoint is a file anyone may have
 * written (or damaged, or moved between weir versions); the job manager and `weir validate` read
 * it with weir_ckpt_meta_decode and plan with weir_restore_plan_build, then hand each new subtask
 * weir_restore_plan_subtask's bundle and keyed document. The file checks of weir_savepoint_read
 * (stat of keyed files) are left out: they need a directory.
 * Input: byte 0 selects the mode: bit 0 = 1: the rest is the whole file (sha256 line included,
 * so the checksum and truncation paths run); bit 0 = 0: the rest is the JSON body and the target
 * appends its correct sha256 line (without this nearly every mutation would stop at the
 * checksum). Bits 1-2 pick the new graph (the seeds' job; the same job rescaled; other chains
 * and parallelisms; a Kafka source where the file source was), bit 3 allow_non_restored, bit 4
 * claim.
 *
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - a refused file: WEIR_ECORRUPT with a one-line message, the struct left cleared;
 * - an accepted file re-encodes, decodes again, and encodes to the same bytes (a fixed point);
 * - the plan: 0, WEIR_EINVAL (refused: a plan is still returned, with a one-line message; it
 *   hands out nothing) or WEIR_ECORRUPT (no plan, one line); never another code;
 * - an accepted plan hands every subtask of the new graph: no bundle, or exactly one msgpack
 *   array with one element per operator of its chain, each nil or [old parallelism >= 1,
 *   [[old subtask < old parallelism, state], ...]] with >= 1 pair, subtasks ascending, and only
 *   its own old subtask when the parallelism did not change; no keyed document, or a JSON object
 *   whose "range" is the subtask's key-group range and whose sources' ranges all intersect it,
 *   ascending; subtasks outside the graph are refused;
 * - the report of any returned plan ends with a "result: " line.
 * Inputs are at most FUZZ_MAX_INPUT bytes (run.sh passes the same -max_len).
 * Seeds: files made by weir_ckpt_meta_encode from metadata built here over graphs made with the
 * define-time API (every stateful kind, keyed state, finished subtasks with no keyed handle,
 * nil states), in both modes, and a version 1 file.
 *
 * State: the four new graphs and the old graph, made once in LLVMFuzzerInitialize (libFuzzer's
 * API leaves no other place for them) and destroyed at exit. Threading: libFuzzer's thread. */
#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "fuzz_util.h"
#include "runtime/graph/graph.h"
#include "runtime/graph/keygroup.h"
#include "savepoint/metadata.h"
#include "savepoint/plan.h"

#define FUZZ_MAX_INPUT 65536u
#define BASE "/fuzz/savepoint-000000-000000000000"

static weir_job_t *g_new[4];
static weir_job_t *g_old;

/* ---- graphs -------------------------------------------------------------------------------- */

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx, (void)in, (void)udata;
}
static uint32_t key_fn(const weir_record_t *in, void *key_out, void *udata) {
    (void)in, (void)key_out, (void)udata;
    return 0;
}

/* src (file, or Kafka) -> parse (map, no uid) -> key_by -> count (value + map state) -> out (file
 * sink, chained); rechain: a rebalance between count and out. */
static weir_job_t *graph(uint32_t p_src, uint32_t p_count, bool kafka, bool rechain) {
    weir_job_t *job = weir_graph_new("fuzz", p_src);
    weir_job_set_max_parallelism(job, 16);
    const char *kopts[] = {"bootstrap.servers", "localhost:1", "topic", "t", NULL};
    weir_stream_t *s =
        kafka ? weir_source_kafka(job, "src", kopts) : weir_source_file(job, "src", "/in", 0);
    weir_set_uid(s, "src");
    s = weir_map(s, "parse", map_fn, NULL);
    weir_stream_t *c = weir_process(weir_key_by(s, key_fn, NULL), "count", map_fn, NULL);
    weir_set_parallelism(weir_set_uid(c, "count"), p_count);
    weir_value_state(c, "count");
    weir_state_set_ttl(c, weir_map_state(c, "seen"), 3600000, WEIR_TTL_ON_CREATE_AND_WRITE);
    if (rechain)
        c = weir_rebalance(c);
    weir_stream_t *o = weir_set_uid(weir_sink_file(c, "out", "/out"), "out");
    weir_set_parallelism(o, rechain ? p_src : p_count);
    char err[512] = "";
    WEIR_FUZZ_CHECK(weir_graph_finalize(job, err, sizeof err) == 0, "graph: %s", err);
    return job;
}

/* ---- seeds --------------------------------------------------------------------------------- */

/* The metadata of @p g: op states for sources and sinks (nil in subtask 1 of the source when
 * @p holes), keyed handles (none for subtask 1 when @p holes: it finished). */
static void make_meta(weir_ckpt_meta_t *m, const weir_job_t *g, bool v2, bool holes) {
    memset(m, 0, sizeof *m);
    snprintf(m->job, sizeof m->job, "%s", "00112233445566778899aabbccddeeff");
    m->id = 12;
    m->kind = v2 ? WEIR_CK_SAVEPOINT : WEIR_CK_CHECKPOINT;
    m->trigger_ms = 1700000000000;
    m->complete_ms = 1700000000500;
    if (v2)
        WEIR_FUZZ_CHECK(weir_ckpt_meta_set_graph(m, g) == 0, "set_graph");
    uint32_t n = 0;
    for (uint32_t v = 0; v < g->n_vertices; v++)
        n += g->vertices[v].parallelism;
    m->tasks = calloc(n, sizeof *m->tasks);
    WEIR_FUZZ_CHECK(m->tasks, "out of memory");
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
                const weir_node_t *nd = &g->nodes[vx->nodes[k]];
                if (weir_op_is_source(nd->kind) && !(holes && s == 1)) {
                    msgpack_pack_map(&pk, 2);
                    msgpack_pack_str_with_body(&pk, "pos", 3);
                    msgpack_pack_uint64(&pk, 1000 + s);
                    msgpack_pack_str_with_body(&pk, "split", 5);
                    msgpack_pack_array(&pk, 2);
                    msgpack_pack_uint32(&pk, s);
                    msgpack_pack_bin_with_body(&pk, "\x00\x01", 2);
                } else if (nd->kind == WEIR_OP_SINK_FILE) {
                    msgpack_pack_array(&pk, 1);
                    msgpack_pack_str_with_body(&pk, "part-1-0", 8);
                } else {
                    msgpack_pack_nil(&pk);
                }
            }
            t->op_state = (uint8_t *)sb.data;
            t->op_state_len = sb.size;
            t->state_size = sb.size;
            if (g->nodes[vx->nodes[0]].n_states && !(holes && s == 1)) {
                char h[512];
                snprintf(h, sizeof h,
                         "{\"version\":1,\"checkpoint\":12,\"task\":\"%u-%u\",\"layout\":"
                         "\"self-contained\",\"shared\":[],\"private\":[{\"name\":\"000%u.sst\","
                         "\"size\":%u,\"sst\":true},{\"name\":\"MANIFEST-000001\",\"size\":90}],"
                         "\"max_parallelism\":16,\"states\":[\"count\",\"seen\"]}",
                         v, s, s, 1000 + s);
                t->keyed = strdup(h);
            }
        }
    }
}

static void seed_meta(const weir_ckpt_meta_t *m, const char *name) {
    char *text = NULL;
    size_t len = 0;
    WEIR_FUZZ_CHECK(weir_ckpt_meta_encode(m, &text, &len) == 0, "seed %s does not encode", name);
    WEIR_FUZZ_CHECK(len > 73, "seed %s too short", name);
    /* the body (mode bit 0 clear) with each graph, allow and claim; the whole file once */
    const uint8_t modes[] = {0, 2, 4, 6, 8 | 2, 16 | 4};
    uint8_t *in = malloc(len + 1);
    WEIR_FUZZ_CHECK(in, "out of memory");
    memcpy(in + 1, text, len);
    for (size_t i = 0; i < sizeof modes; i++) {
        in[0] = modes[i];
        weir_fuzz_seedf(in, len - 73 + 1, "%s-body-%u", name, modes[i]);
    }
    in[0] = 1;
    weir_fuzz_seedf(in, len + 1, "%s-file", name);
    free(in);
    free(text);
}

static void write_seeds(void) {
    const struct {
        uint32_t p_src, p_count;
        bool holes;
        const char *name;
    } cases[] = {{2, 2, false, "same"}, {3, 2, true, "holes"}, {1, 4, false, "wide"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        weir_job_t *g = graph(cases[i].p_src, cases[i].p_count, false, false);
        weir_ckpt_meta_t m;
        make_meta(&m, g, true, cases[i].holes);
        seed_meta(&m, cases[i].name);
        weir_ckpt_meta_clear(&m);
        weir_graph_destroy(&g);
    }
    /* version 1: the body of the old graph's metadata, written as version 1 */
    weir_ckpt_meta_t m;
    make_meta(&m, g_old, false, false);
    char *text = NULL;
    size_t len = 0;
    WEIR_FUZZ_CHECK(weir_ckpt_meta_encode(&m, &text, &len) == 0, "v1 seed");
    char *body = strndup(text, len - 73);
    WEIR_FUZZ_CHECK(body, "out of memory");
    char *ops = strstr(body, ",\"max_parallelism\":0,\"operators\":[]");
    char *kind = strstr(body, ",\"kind\":\"checkpoint\"");
    WEIR_FUZZ_CHECK(ops && kind && !strncmp(body, "{\"version\":2,", 13), "v1 seed layout");
    memmove(ops, ops + strlen(",\"max_parallelism\":0,\"operators\":[]"),
            strlen(ops + strlen(",\"max_parallelism\":0,\"operators\":[]")) + 1);
    memmove(kind, kind + strlen(",\"kind\":\"checkpoint\""),
            strlen(kind + strlen(",\"kind\":\"checkpoint\"")) + 1);
    body[11] = '1';
    size_t blen = strlen(body);
    uint8_t *in = malloc(blen + 1);
    WEIR_FUZZ_CHECK(in, "out of memory");
    in[0] = 0;
    memcpy(in + 1, body, blen);
    weir_fuzz_seed("v1-body", in, blen + 1);
    free(in);
    free(body);
    free(text);
    weir_ckpt_meta_clear(&m);
}

static void destroy_graphs(void) {
    for (int i = 0; i < 4; i++)
        weir_graph_destroy(&g_new[i]);
    weir_graph_destroy(&g_old);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_old = graph(2, 2, false, false);
    g_new[0] = graph(2, 2, false, false);
    g_new[1] = graph(3, 1, false, false);
    g_new[2] = graph(2, 3, false, true);
    g_new[3] = graph(2, 2, true, false);
    write_seeds();
    atexit(destroy_graphs);
    return 0;
}

/* ---- checks -------------------------------------------------------------------------------- */

static bool one_line(const char *s) {
    return s[0] && !strchr(s, '\n');
}

static void check_bundle(const uint8_t *b, size_t len, const weir_vertex_t *vx, uint32_t s) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    WEIR_FUZZ_CHECK(msgpack_unpack_next(&u, (const char *)b, len, &off) == MSGPACK_UNPACK_SUCCESS &&
                        off == len,
                    "the bundle is not one msgpack object");
    const msgpack_object *a = &u.data;
    WEIR_FUZZ_CHECK(a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == vx->n_nodes,
                    "the bundle is not an array of %u elements", vx->n_nodes);
    bool any = false;
    for (uint32_t k = 0; k < vx->n_nodes; k++) {
        const msgpack_object *e = &a->via.array.ptr[k];
        if (e->type == MSGPACK_OBJECT_NIL)
            continue;
        any = true;
        WEIR_FUZZ_CHECK(e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2 &&
                            e->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                            e->via.array.ptr[0].via.u64 >= 1 &&
                            e->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY &&
                            e->via.array.ptr[1].via.array.size >= 1,
                        "element %u is not [old_parallelism, [pairs]]", k);
        uint64_t old_par = e->via.array.ptr[0].via.u64;
        const msgpack_object *pairs = &e->via.array.ptr[1];
        int64_t prev = -1;
        for (uint32_t i = 0; i < pairs->via.array.size; i++) {
            const msgpack_object *pr = &pairs->via.array.ptr[i];
            WEIR_FUZZ_CHECK(pr->type == MSGPACK_OBJECT_ARRAY && pr->via.array.size == 2 &&
                                pr->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                                pr->via.array.ptr[0].via.u64 < old_par &&
                                (int64_t)pr->via.array.ptr[0].via.u64 > prev &&
                                pr->via.array.ptr[1].type != MSGPACK_OBJECT_NIL,
                            "element %u pair %u", k, i);
            prev = (int64_t)pr->via.array.ptr[0].via.u64;
        }
        if (old_par == vx->parallelism)
            WEIR_FUZZ_CHECK(pairs->via.array.size == 1 && prev == s,
                            "unchanged parallelism: subtask %u got another's state", s);
    }
    WEIR_FUZZ_CHECK(any, "a bundle of nils only (should be none)");
    msgpack_unpacked_destroy(&u);
}

static void check_keyed(const char *doc, uint32_t first, uint32_t last, bool claim) {
    json_error_t jerr;
    json_t *d = json_loads(doc, 0, &jerr);
    WEIR_FUZZ_CHECK(json_is_object(d), "the keyed document is not a JSON object: %s", doc);
    const json_t *r = json_object_get(d, "range");
    WEIR_FUZZ_CHECK(json_array_size(r) == 2 &&
                        json_integer_value(json_array_get(r, 0)) == (json_int_t)first &&
                        json_integer_value(json_array_get(r, 1)) == (json_int_t)last,
                    "range is not [%u, %u]", first, last);
    WEIR_FUZZ_CHECK(json_is_true(json_object_get(d, "claim")) == claim, "claim");
    WEIR_FUZZ_CHECK(!strcmp(json_string_value(json_object_get(d, "base")), BASE), "base");
    const json_t *sources = json_object_get(d, "sources");
    WEIR_FUZZ_CHECK(json_array_size(sources) >= 1, "no sources");
    json_int_t prev = -1;
    for (size_t i = 0; i < json_array_size(sources); i++) {
        const json_t *s = json_array_get(sources, i);
        const json_t *sr = json_object_get(s, "range");
        json_int_t a = json_integer_value(json_array_get(sr, 0));
        json_int_t b = json_integer_value(json_array_get(sr, 1));
        WEIR_FUZZ_CHECK(a <= b && a > prev && b >= (json_int_t)first && a <= (json_int_t)last,
                        "source %zu range [%lld, %lld] does not intersect [%u, %u] in order", i,
                        (long long)a, (long long)b, first, last);
        WEIR_FUZZ_CHECK(json_is_object(json_object_get(s, "handle")), "source %zu handle", i);
        prev = b;
    }
    json_decref(d);
}

static void check_report(const weir_restore_plan_t *p) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    WEIR_FUZZ_CHECK(f, "open_memstream");
    weir_restore_plan_report(p, f);
    fclose(f);
    const char *last = len >= 2 ? text + len - 2 : text;
    while (last > text && last[-1] != '\n')
        last--;
    WEIR_FUZZ_CHECK(len && text[len - 1] == '\n' && !strncmp(last, "result: ", 8),
                    "the report does not end with a result line");
    free(text);
}

static void check_plan(const weir_ckpt_meta_t *m, uint8_t mode) {
    const weir_job_t *g = g_new[(mode >> 1) & 3];
    bool allow = mode & 8, claim = mode & 16;
    weir_restore_plan_t *p = NULL;
    char err[1024] = "";
    int rc = weir_restore_plan_build(m, m->n_ops ? NULL : g_old, g, BASE, claim, allow, &p, err,
                                     sizeof err);
    WEIR_FUZZ_CHECK(rc == 0 || rc == WEIR_EINVAL || rc == WEIR_ECORRUPT, "plan: rc %d", rc);
    if (rc != 0) {
        WEIR_FUZZ_CHECK(one_line(err), "a refusal without a one-line message");
        WEIR_FUZZ_CHECK((rc == WEIR_EINVAL) == (p != NULL), "rc %d with plan %p", rc, (void *)p);
    }
    if (getenv("WEIR_FUZZ_VERBOSE"))
        fprintf(stderr, "plan: %d %s\n", rc, err);
    if (p)
        check_report(p);
    for (uint32_t v = 0; p && v < g->n_vertices; v++) {
        const weir_vertex_t *vx = &g->vertices[v];
        for (uint32_t s = 0; s <= vx->parallelism; s++) {
            uint8_t *b = NULL;
            size_t len = 0;
            char *k = NULL;
            int r = weir_restore_plan_subtask(p, v, s, &b, &len, &k);
            if (rc != 0 || s == vx->parallelism) {
                WEIR_FUZZ_CHECK(r == WEIR_EINVAL && !b && !len && !k, "subtask %u-%u handed out", v,
                                s);
                continue;
            }
            WEIR_FUZZ_CHECK(r == 0, "subtask %u-%u: rc %d", v, s, r);
            WEIR_FUZZ_CHECK((b == NULL) == (len == 0), "bundle %p of %zu bytes", (void *)b, len);
            if (b)
                check_bundle(b, len, vx, s);
            if (k) {
                uint32_t first, last;
                weir_keygroup_range(s, vx->parallelism, g->max_parallelism, &first, &last);
                check_keyed(k, first, last, claim);
            }
            free(b);
            free(k);
        }
    }
    weir_restore_plan_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_MAX_INPUT)
        return -1;
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    char *file;
    size_t len;
    if (mode & 1) {
        len = size - 1;
        file = malloc(len + 1);
        WEIR_FUZZ_CHECK(file, "out of memory");
        memcpy(file, data + 1, len);
    } else {
        len = size + 72; /* body, newline, "sha256 " + 64 hex, newline */
        file = malloc(len + 1);
        WEIR_FUZZ_CHECK(file, "out of memory");
        memcpy(file, data + 1, size - 1);
        file[size - 1] = '\n';
        char hex[65];
        weir_sha256_hex(file, size, hex);
        memcpy(file + size, "sha256 ", 7);
        memcpy(file + size + 7, hex, 64);
        file[len - 1] = '\n';
    }
    file[len] = 0;
    weir_ckpt_meta_t m;
    char err[1024] = "";
    int rc = weir_ckpt_meta_decode(file, len, &m, err, sizeof err);
    free(file);
    if (rc != 0) {
        WEIR_FUZZ_CHECK(rc == WEIR_ECORRUPT && one_line(err), "decode: rc %d, '%s'", rc, err);
        WEIR_FUZZ_CHECK(!m.n_tasks && !m.n_ops && !m.tasks && !m.ops, "refused but not cleared");
        if (getenv("WEIR_FUZZ_VERBOSE"))
            fprintf(stderr, "refused: %s\n", err);
        return 0;
    }
    /* a fixed point after one encoding */
    char *e1 = NULL, *e2 = NULL;
    size_t l1 = 0, l2 = 0;
    int r1 = weir_ckpt_meta_encode(&m, &e1, &l1);
    /* a keyed handle JSON_ENCODE_ANY kept as text is always JSON: encoding cannot fail */
    WEIR_FUZZ_CHECK(r1 == 0, "an accepted file does not encode: %d", r1);
    weir_ckpt_meta_t m2;
    rc = weir_ckpt_meta_decode(e1, l1, &m2, err, sizeof err);
    WEIR_FUZZ_CHECK(rc == 0, "its encoding is refused: %s", err);
    WEIR_FUZZ_CHECK(weir_ckpt_meta_encode(&m2, &e2, &l2) == 0 && l1 == l2 && !memcmp(e1, e2, l1),
                    "encode(decode(encode(m))) differs from encode(m)");
    free(e1);
    free(e2);
    weir_ckpt_meta_clear(&m2);
    check_plan(&m, mode);
    weir_ckpt_meta_clear(&m);
    return 0;
}
