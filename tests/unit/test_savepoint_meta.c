/* Tests of savepoint/metadata.c and savepoint/read.c: the _metadata format version 2 (round
 * trip of every member, member order, the operator list of a graph with chains), files written
 * by hand (version 1 and 2 texts here, their sha256 line computed with OpenSSL, not by weir) and
 * what they decode to, every refusal of the decoder, and weir_savepoint_read: the three path
 * forms, the realpath base, a relocated savepoint, the checkpoint layout (../shared,
 * ../chk-<n>/<task>), and one line naming the file for a missing path, a directory without
 * _metadata, a corrupt or short _metadata, tasks that do not match the operators, a keyed file
 * that is missing or has another size, and unsafe file names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>
#include <openssl/sha.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/graph/graph.h"
#include "savepoint/metadata.h"
#include "savepoint/read.h"
#include "testutil.h"

static const char *JOB = "0123456789abcdef0123456789abcdef";

/* ---- helpers ------------------------------------------------------------------------------- */

static void map_fn(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)ctx, (void)in, (void)udata;
}
static uint32_t key_fn(const weir_record_t *in, void *key_out, void *udata) {
    (void)in, (void)key_out, (void)udata;
    return 0;
}

/* file source "src" -> map "parse" (chained) -> key_by -> process "count" (value "count", map
 * "seen") at parallelism 3 -> file sink "out" (chained); max parallelism 64 */
static weir_job_t *wordcount(void) {
    weir_job_t *job = weir_graph_new("wc", 2);
    weir_job_set_max_parallelism(job, 64);
    weir_stream_t *s = weir_set_uid(weir_source_file(job, "src", "/in", 0), "src");
    s = weir_map(s, "parse", map_fn, NULL);
    weir_stream_t *c = weir_process(weir_key_by(s, key_fn, NULL), "count", map_fn, NULL);
    weir_set_uid(weir_set_parallelism(c, 3), "count");
    weir_value_state(c, "count");
    weir_map_state(c, "seen");
    weir_set_uid(weir_set_parallelism(weir_sink_file(c, "out", "/out"), 3), "out");
    char err[512] = "";
    assert_int_equal(weir_graph_finalize(job, err, sizeof err), 0);
    return job;
}

/* Content + "sha256 <hex of content>\n", the hash from OpenSSL. */
static char *with_sha(const char *json) {
    size_t n = strlen(json);
    char *out = malloc(n + 2 + 72);
    memcpy(out, json, n);
    out[n++] = '\n';
    uint8_t d[32];
    SHA256((const uint8_t *)out, n, d);
    memcpy(out + n, "sha256 ", 7);
    for (int i = 0; i < 32; i++)
        sprintf(out + n + 7 + 2 * i, "%02x", d[i]);
    out[n + 71] = '\n';
    out[n + 72] = 0;
    return out;
}

static int decode_text(const char *json, weir_ckpt_meta_t *m, char *err, size_t errlen) {
    char *data = with_sha(json);
    int rc = weir_ckpt_meta_decode(data, strlen(data), m, err, errlen);
    free(data);
    return rc;
}

static void write_text(const char *path, const char *text) {
    assert_int_equal(weir_write_file_atomic(path, text, strlen(text)), 0);
}

static void write_bytes(const char *dir, const char *rel, size_t n) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    assert_int_equal(weir_mkdirs(p), 0);
    *slash = '/';
    char *buf = calloc(1, n + 1);
    memset(buf, 'x', n);
    assert_int_equal(weir_write_file_atomic(p, buf, n), 0);
    free(buf);
}

/* ---- the format ---------------------------------------------------------------------------- */

static void test_set_graph(void **state) {
    (void)state;
    weir_job_t *job = wordcount();
    weir_ckpt_meta_t m = {0};
    assert_int_equal(weir_ckpt_meta_set_graph(&m, job), 0);
    assert_int_equal(m.max_parallelism, 64);
    assert_int_equal(m.n_ops, 4);
    /* node order; chains [src, parse] (vertex 0) and [count, out] (vertex 1) */
    const char *names[] = {"src", "parse", "count", "out"};
    const char *uids[] = {"src", NULL, "count", "out"};
    uint32_t vx[] = {0, 0, 1, 1}, idx[] = {0, 1, 0, 1}, par[] = {2, 2, 3, 3};
    weir_op_kind_t kinds[] = {WEIR_OP_SOURCE_FILE, WEIR_OP_MAP, WEIR_OP_PROCESS, WEIR_OP_SINK_FILE};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(m.ops[i].name, names[i]);
        if (uids[i])
            assert_string_equal(m.ops[i].uid, uids[i]);
        else
            assert_null(m.ops[i].uid);
        assert_int_equal(m.ops[i].vertex, vx[i]);
        assert_int_equal(m.ops[i].index, idx[i]);
        assert_int_equal(m.ops[i].parallelism, par[i]);
        assert_int_equal(m.ops[i].kind, kinds[i]);
        assert_int_equal(m.ops[i].keyed, i == 2);
        assert_int_equal(m.ops[i].n_states, i == 2 ? 2 : 0);
    }
    assert_string_equal(m.ops[2].states[0].name, "count");
    assert_int_equal(m.ops[2].states[0].kind, WEIR_STATE_VALUE);
    assert_string_equal(m.ops[2].states[1].name, "seen");
    assert_int_equal(m.ops[2].states[1].kind, WEIR_STATE_MAP);
    assert_null(m.ops[2].states[0].reduce);
    /* a second call replaces the list */
    assert_int_equal(weir_ckpt_meta_set_graph(&m, job), 0);
    assert_int_equal(m.n_ops, 4);
    weir_ckpt_meta_clear(&m);
    /* a graph that is not finalized */
    weir_job_t *raw = weir_graph_new("raw", 1);
    assert_int_equal(weir_ckpt_meta_set_graph(&m, raw), WEIR_EINVAL);
    assert_int_equal(m.n_ops, 0);
    weir_graph_destroy(&raw);
    weir_graph_destroy(&job);
}

static void test_v2_round_trip(void **state) {
    (void)state;
    weir_job_t *job = wordcount();
    uint8_t op[] = {0x92, 0xc0, 0x07}; /* [nil, 7] */
    char handle[] =
        "{\"version\":1,\"checkpoint\":5,\"task\":\"1-0\",\"shared\":[],\"private\":[]}";
    weir_ckpt_task_t tasks[] = {
        {.vertex = 0, .subtask = 1, .op_state = op, .op_state_len = 3, .state_size = 3},
        {.vertex = 1, .subtask = 2, .keyed = handle, .state_size = 99},
    };
    weir_ckpt_meta_t m = {.id = 5,
                          .kind = WEIR_CK_SAVEPOINT,
                          .trigger_ms = 1000,
                          .complete_ms = 2000,
                          .final = true,
                          .tasks = tasks,
                          .n_tasks = 2};
    strcpy(m.job, JOB);
    assert_int_equal(weir_ckpt_meta_set_graph(&m, job), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(weir_ckpt_meta_encode(&m, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    /* members in the documented order */
    const char *order[] = {
        "{\"version\":2,",   "\"job\":",           "\"checkpoint\":5,", "\"kind\":\"savepoint\"",
        "\"trigger_time\":", "\"complete_time\":", "\"final\":true",    "\"max_parallelism\":64",
        "\"operators\":[",   "\"tasks\":["};
    const char *at = text;
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        const char *p = strstr(at, order[i]);
        assert_non_null(p);
        at = p;
    }
    assert_non_null(strstr(text, "{\"uid\":null,\"name\":\"parse\",\"kind\":\"map\",\"vertex\":0,"
                                 "\"index\":1,\"parallelism\":2,\"keyed\":false,\"states\":[]}"));
    assert_non_null(strstr(text, "\"states\":[{\"name\":\"count\",\"kind\":\"value\"},"
                                 "{\"name\":\"seen\",\"kind\":\"map\"}]"));
    /* the sha256 line is OpenSSL's of everything before it */
    char *again = NULL;
    {
        size_t body = len - 72;
        char *json = strndup(text, body - 1);
        again = with_sha(json);
        free(json);
    }
    assert_string_equal(again, text);
    free(again);

    weir_ckpt_meta_t d;
    char err[512] = "";
    assert_int_equal(weir_ckpt_meta_decode(text, len, &d, err, sizeof err), 0);
    assert_string_equal(d.job, JOB);
    assert_int_equal(d.id, 5);
    assert_int_equal(d.kind, WEIR_CK_SAVEPOINT);
    assert_int_equal(d.trigger_ms, 1000);
    assert_int_equal(d.complete_ms, 2000);
    assert_true(d.final);
    assert_int_equal(d.max_parallelism, 64);
    assert_int_equal(d.n_ops, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_true((d.ops[i].uid == NULL) == (m.ops[i].uid == NULL));
        if (d.ops[i].uid)
            assert_string_equal(d.ops[i].uid, m.ops[i].uid);
        assert_string_equal(d.ops[i].name, m.ops[i].name);
        assert_int_equal(d.ops[i].kind, m.ops[i].kind);
        assert_int_equal(d.ops[i].vertex, m.ops[i].vertex);
        assert_int_equal(d.ops[i].index, m.ops[i].index);
        assert_int_equal(d.ops[i].parallelism, m.ops[i].parallelism);
        assert_int_equal(d.ops[i].keyed, m.ops[i].keyed);
        assert_int_equal(d.ops[i].n_states, m.ops[i].n_states);
        for (uint32_t s = 0; s < d.ops[i].n_states; s++) {
            assert_string_equal(d.ops[i].states[s].name, m.ops[i].states[s].name);
            assert_int_equal(d.ops[i].states[s].kind, m.ops[i].states[s].kind);
        }
    }
    assert_int_equal(d.n_tasks, 2);
    assert_int_equal(d.tasks[0].subtask, 1);
    assert_int_equal(d.tasks[0].op_state_len, 3);
    assert_memory_equal(d.tasks[0].op_state, op, 3);
    assert_null(d.tasks[0].keyed);
    assert_string_equal(d.tasks[1].keyed, handle);
    assert_int_equal(d.tasks[1].state_size, 99);
    /* encode(decode(x)) == x */
    char *text2 = NULL;
    size_t len2 = 0;
    assert_int_equal(weir_ckpt_meta_encode(&d, &text2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(text2, text, len);
    free(text2);
    weir_ckpt_meta_clear(&d);
    /* a stop-with-savepoint is written as a savepoint */
    m.kind = WEIR_CK_STOP;
    free(text);
    assert_int_equal(weir_ckpt_meta_encode(&m, &text, &len), 0);
    assert_non_null(strstr(text, "\"kind\":\"savepoint\""));
    free(text);
    m.tasks = NULL;
    m.n_tasks = 0;
    weir_ckpt_meta_clear(&m);
    weir_graph_destroy(&job);
}

/* A version 1 file as weir wrote it before savepoints (text written here). */
static const char V1[] =
    "{\"version\":1,\"job\":\"0123456789abcdef0123456789abcdef\",\"checkpoint\":3,"
    "\"trigger_time\":10,\"complete_time\":20,\"final\":false,\"tasks\":[{\"vertex\":0,"
    "\"subtask\":0,\"op_state\":\"kcA=\",\"keyed\":null,\"state_size\":2},{\"vertex\":1,"
    "\"subtask\":0,\"op_state\":null,\"keyed\":{\"version\":1,\"checkpoint\":2,\"task\":\"1-0\","
    "\"shared\":[],\"private\":[]},\"state_size\":7}]}";

static void test_v1_decodes(void **state) {
    (void)state;
    weir_ckpt_meta_t m;
    char err[512] = "";
    assert_int_equal(decode_text(V1, &m, err, sizeof err), 0);
    assert_int_equal(m.id, 3);
    assert_int_equal(m.kind, WEIR_CK_CHECKPOINT);
    assert_int_equal(m.max_parallelism, 0);
    assert_int_equal(m.n_ops, 0);
    assert_null(m.ops);
    assert_int_equal(m.n_tasks, 2);
    assert_int_equal(m.tasks[0].op_state_len, 2);
    assert_memory_equal(m.tasks[0].op_state, "\x91\xc0", 2);
    assert_non_null(strstr(m.tasks[1].keyed, "\"task\":\"1-0\""));
    /* written again, it is version 2 with no operators */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(weir_ckpt_meta_encode(&m, &text, &len), 0);
    assert_non_null(strstr(text, "\"version\":2,"));
    assert_non_null(strstr(text, "\"kind\":\"checkpoint\",\"trigger_time\":10"));
    assert_non_null(strstr(text, "\"max_parallelism\":0,\"operators\":[],\"tasks\":["));
    free(text);
    weir_ckpt_meta_clear(&m);
}

/* A version 2 file written here: one keyed operator. */
#define V2_HEAD                                                                                    \
    "{\"version\":2,\"job\":\"0123456789abcdef0123456789abcdef\",\"checkpoint\":4,"                \
    "\"kind\":\"savepoint\",\"trigger_time\":1,\"complete_time\":2,\"final\":false,"
#define V2_OPS                                                                                     \
    "\"operators\":[{\"uid\":\"g\",\"name\":\"gen\",\"kind\":\"source_generator\",\"vertex\":0,"   \
    "\"index\":0,\"parallelism\":1,\"keyed\":false,\"states\":[]},{\"uid\":\"c\",\"name\":"        \
    "\"count\",\"kind\":\"process\",\"vertex\":1,\"index\":0,\"parallelism\":2,\"keyed\":true,"    \
    "\"states\":[{\"name\":\"n\",\"kind\":\"reducing\"}]}],"

static void test_v2_by_hand(void **state) {
    (void)state;
    weir_ckpt_meta_t m;
    char err[512] = "";
    assert_int_equal(
        decode_text(V2_HEAD "\"max_parallelism\":16," V2_OPS "\"tasks\":[]}", &m, err, sizeof err),
        0);
    assert_int_equal(m.kind, WEIR_CK_SAVEPOINT);
    assert_int_equal(m.max_parallelism, 16);
    assert_int_equal(m.n_ops, 2);
    assert_string_equal(m.ops[0].uid, "g");
    assert_int_equal(m.ops[0].kind, WEIR_OP_SOURCE_GENERATOR);
    assert_int_equal(m.ops[1].kind, WEIR_OP_PROCESS);
    assert_int_equal(m.ops[1].parallelism, 2);
    assert_true(m.ops[1].keyed);
    assert_int_equal(m.ops[1].n_states, 1);
    assert_string_equal(m.ops[1].states[0].name, "n");
    assert_int_equal(m.ops[1].states[0].kind, WEIR_STATE_REDUCING);
    weir_ckpt_meta_clear(&m);
}

static void expect_corrupt(const char *json, const char *needle) {
    weir_ckpt_meta_t m;
    char err[512] = "";
    int rc = decode_text(json, &m, err, sizeof err);
    if (rc != WEIR_ECORRUPT || !strstr(err, needle) || strchr(err, '\n'))
        fail_msg("decode of %s: rc %d, message '%s', wanted '%s'", json, rc, err, needle);
    assert_int_equal(m.n_ops, 0);
    assert_int_equal(m.n_tasks, 0);
    assert_null(m.ops);
}

static void test_decode_refusals(void **state) {
    (void)state;
    expect_corrupt("{\"version\":3,\"job\":\"x\",\"checkpoint\":1,\"tasks\":[]}",
                   "unsupported version 3 (this weir reads versions 1 to 2)");
    expect_corrupt(V2_HEAD "\"max_parallelism\":16,\"tasks\":[]}",
                   "checkpoint metadata: missing array \"operators\"");
    expect_corrupt("{\"version\":2,\"job\":\"x\",\"checkpoint\":1,\"max_parallelism\":1,"
                   "\"operators\":[],\"tasks\":[]}",
                   "checkpoint metadata: missing string \"kind\"");
    expect_corrupt("{\"version\":2,\"job\":\"x\",\"checkpoint\":1,\"kind\":\"stop\","
                   "\"max_parallelism\":1,\"operators\":[],\"tasks\":[]}",
                   "\"kind\" is 'stop', not 'checkpoint' or 'savepoint'");
    expect_corrupt(V2_HEAD "\"max_parallelism\":0," V2_OPS "\"tasks\":[]}",
                   "\"max_parallelism\" is 0 but there are operators");
    expect_corrupt(V2_HEAD "\"max_parallelism\":40000," V2_OPS "\"tasks\":[]}",
                   "\"max_parallelism\" = 40000 is out of range [0, 32768]");
    expect_corrupt(V2_HEAD "\"max_parallelism\":8,\"operators\":[7],\"tasks\":[]}",
                   "operator 0 is not an object");
    expect_corrupt(V2_HEAD "\"max_parallelism\":8,\"operators\":[{\"uid\":null,\"name\":\"a\","
                           "\"kind\":\"teleport\",\"vertex\":0,\"index\":0,\"parallelism\":1,"
                           "\"keyed\":false,\"states\":[]}],\"tasks\":[]}",
                   "operator 0: unknown kind 'teleport'");
    expect_corrupt(V2_HEAD "\"max_parallelism\":8,\"operators\":[{\"uid\":null,\"name\":\"a\","
                           "\"kind\":\"map\",\"vertex\":0,\"index\":0,\"parallelism\":0,"
                           "\"keyed\":false,\"states\":[]}],\"tasks\":[]}",
                   "operator 0: \"parallelism\" = 0 is out of range");
    expect_corrupt(V2_HEAD "\"max_parallelism\":8,\"operators\":[{\"uid\":5,\"name\":\"a\","
                           "\"kind\":\"map\",\"vertex\":0,\"index\":0,\"parallelism\":1,"
                           "\"keyed\":false,\"states\":[]}],\"tasks\":[]}",
                   "operator 0: \"uid\" must be a string");
    expect_corrupt(V2_HEAD "\"max_parallelism\":8,\"operators\":[{\"uid\":null,\"name\":\"a\","
                           "\"kind\":\"process\",\"vertex\":0,\"index\":0,\"parallelism\":1,"
                           "\"keyed\":true,\"states\":[{\"name\":\"s\",\"kind\":\"set\"}]}],"
                           "\"tasks\":[]}",
                   "operator 0: state 0: unknown kind 'set'");
    expect_corrupt(V2_HEAD "\"max_parallelism\":8,\"operators\":[{\"uid\":null,\"name\":\"a\","
                           "\"kind\":\"process\",\"vertex\":0,\"index\":0,\"parallelism\":1,"
                           "\"keyed\":true}],\"tasks\":[]}",
                   "operator 0: missing array \"states\"");
    expect_corrupt("{\"version\":1,\"job\":\"x\",\"checkpoint\":1,\"tasks\":[{\"vertex\":0,"
                   "\"subtask\":0,\"op_state\":\"***\"}]}",
                   "task 0: op_state is not base64");
    /* a truncated file and a changed byte */
    char *data = with_sha(V1);
    weir_ckpt_meta_t m;
    char err[512] = "";
    assert_int_equal(weir_ckpt_meta_decode(data, strlen(data) / 2, &m, err, sizeof err),
                     WEIR_ECORRUPT);
    assert_string_equal(err, "no final sha256 line (truncated?)");
    data[5] ^= 1;
    assert_int_equal(weir_ckpt_meta_decode(data, strlen(data), &m, err, sizeof err), WEIR_ECORRUPT);
    assert_non_null(strstr(err, "sha256 mismatch"));
    free(data);
    /* a sha256 "line" that is not hex (here with a newline in it: found by fuzz_metadata) */
    const char *bad =
        "{}\nsha256 a]}\nsha256 ac73c0260ecbe3b801\",\"sibe3bf1bde5dc67dfd5af8ebd738894\n";
    assert_int_equal(weir_ckpt_meta_decode(bad, strlen(bad), &m, err, sizeof err), WEIR_ECORRUPT);
    assert_string_equal(err, "the sha256 line does not end with 64 lowercase hex digits");
}

/* ---- weir_savepoint_read ------------------------------------------------------------------- */

/* The storage env of the reads (POSIX locations: storage/posix.c). */
static weir_storage_env_t *g_env;

static int setup_env(void **state) {
    (void)state;
    char err[256];
    g_env = weir_storage_env_new(NULL, err, sizeof err);
    return g_env ? 0 : -1;
}

static int teardown_env(void **state) {
    (void)state;
    weir_storage_env_free(&g_env);
    return 0;
}

/* A savepoint directory @p dir (self-contained): vertex 0 (generator, op state), vertex 1 (keyed
 * "count" at parallelism 2) with files 1-0/{a.sst (5 bytes), MANIFEST (3 bytes)} and 1-1/{b.sst
 * (4 bytes)}. */
static void write_savepoint(const char *dir) {
    const char *h0 =
        "{\"version\":1,\"checkpoint\":4,\"task\":\"1-0\",\"layout\":\"self-contained\","
        "\"shared\":[],\"private\":[{\"name\":\"a.sst\",\"size\":5,\"sst\":true},"
        "{\"name\":\"MANIFEST\",\"size\":3}]}";
    const char *h1 =
        "{\"version\":1,\"checkpoint\":4,\"task\":\"1-1\",\"layout\":\"self-contained\","
        "\"shared\":[],\"private\":[{\"name\":\"b.sst\",\"size\":4,\"sst\":true}]}";
    char json[4096];
    snprintf(json, sizeof json,
             V2_HEAD "\"max_parallelism\":16," V2_OPS
                     "\"tasks\":[{\"vertex\":0,\"subtask\":0,\"op_state\":\"kQc=\",\"keyed\":null,"
                     "\"state_size\":2},{\"vertex\":1,\"subtask\":0,\"op_state\":\"kcA=\","
                     "\"keyed\":%s,\"state_size\":8},{\"vertex\":1,\"subtask\":1,\"op_state\":"
                     "\"kcA=\",\"keyed\":%s,\"state_size\":4}]}",
             h0, h1);
    assert_int_equal(weir_mkdirs(dir), 0);
    char path[2048];
    snprintf(path, sizeof path, "%s/_metadata", dir);
    char *text = with_sha(json);
    write_text(path, text);
    free(text);
    write_bytes(dir, "1-0/a.sst", 5);
    write_bytes(dir, "1-0/MANIFEST", 3);
    write_bytes(dir, "1-1/b.sst", 4);
}

static void expect_read_fails(const char *path, int want, const char *msg) {
    weir_ckpt_meta_t m;
    char base[4096], err[1024] = "";
    int rc = weir_savepoint_read(g_env, path, &m, base, sizeof base, err, sizeof err);
    if (rc != want || strcmp(err, msg) != 0)
        fail_msg("read %s: rc %d '%s', wanted %d '%s'", path, rc, err, want, msg);
    assert_int_equal(m.n_tasks, 0);
    assert_int_equal(m.n_ops, 0);
}

static void test_read_forms(void **state) {
    (void)state;
    char *tmp = weir_test_tmpdir("spread");
    char *real = realpath(tmp, NULL);
    char dir[1024], path[2048], link[2048], base[4096], err[1024] = "";
    snprintf(dir, sizeof dir, "%s/savepoint-012345-abcdefabcdef", tmp);
    write_savepoint(dir);
    weir_ckpt_meta_t m;
    /* the directory, with a trailing slash, and its _metadata */
    const char *forms[] = {"%s", "%s/", "%s/_metadata"};
    char want_base[2048];
    snprintf(want_base, sizeof want_base, "%s/savepoint-012345-abcdefabcdef", real);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, forms[i], dir);
        assert_int_equal(weir_savepoint_read(g_env, path, &m, base, sizeof base, err, sizeof err),
                         0);
        assert_string_equal(base, want_base);
        assert_int_equal(m.id, 4);
        assert_int_equal(m.n_ops, 2);
        assert_int_equal(m.n_tasks, 3);
        weir_ckpt_meta_clear(&m);
    }
    /* through a symbolic link: the base is the real directory */
    snprintf(link, sizeof link, "%s/sp-link", tmp);
    assert_int_equal(symlink(dir, link), 0);
    assert_int_equal(weir_savepoint_read(g_env, link, &m, base, sizeof base, err, sizeof err), 0);
    assert_string_equal(base, want_base);
    weir_ckpt_meta_clear(&m);
    /* relocated: moved to another directory, read from there */
    char moved[2048];
    snprintf(moved, sizeof moved, "%s/elsewhere/sp", tmp);
    snprintf(path, sizeof path, "%s/elsewhere", tmp);
    assert_int_equal(weir_mkdirs(path), 0);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(weir_savepoint_read(g_env, moved, &m, base, sizeof base, err, sizeof err), 0);
    snprintf(want_base, sizeof want_base, "%s/elsewhere/sp", real);
    assert_string_equal(base, want_base);
    weir_ckpt_meta_clear(&m);
    /* as a file:// URI (storage.h): the same base, an absolute path */
    snprintf(path, sizeof path, "file://%s/elsewhere/sp", real);
    assert_int_equal(weir_savepoint_read(g_env, path, &m, base, sizeof base, err, sizeof err), 0);
    assert_string_equal(base, want_base);
    weir_ckpt_meta_clear(&m);
    /* a URI that is no location: one line saying what to use */
    assert_int_equal(weir_savepoint_read(g_env, "s3://A/x", &m, base, sizeof base, err, sizeof err),
                     WEIR_ECONFIG);
    assert_non_null(strstr(err, "s3://bucket/prefix"));
    /* a base buffer that is too small */
    assert_int_equal(weir_savepoint_read(g_env, moved, &m, base, 8, err, sizeof err), WEIR_EINVAL);
    free(real);
    weir_test_tmpdir_remove(tmp);
}

static void test_read_checkpoint_layout(void **state) {
    (void)state;
    char *tmp = weir_test_tmpdir("spchk");
    char *real = realpath(tmp, NULL);
    /* <ckdir>/chk-7/_metadata; a handle of checkpoint 6 with a shared and a private file */
    const char *h = "{\"version\":1,\"checkpoint\":6,\"task\":\"1-0\",\"shared\":[{\"name\":"
                    "\"i-1.sst\",\"local\":\"1.sst\",\"size\":2}],\"private\":[{\"name\":"
                    "\"MANIFEST\",\"size\":1}]}";
    char json[2048], path[2048], base[4096], err[1024] = "";
    snprintf(json, sizeof json,
             V2_HEAD "\"max_parallelism\":16," V2_OPS
                     "\"tasks\":[{\"vertex\":1,\"subtask\":0,\"op_state\":null,\"keyed\":%s,"
                     "\"state_size\":3}]}",
             h);
    snprintf(path, sizeof path, "%s/job/chk-7", tmp);
    assert_int_equal(weir_mkdirs(path), 0);
    snprintf(path, sizeof path, "%s/job/chk-7/_metadata", tmp);
    char *text = with_sha(json);
    write_text(path, text);
    free(text);
    snprintf(path, sizeof path, "%s/job", tmp);
    write_bytes(path, "shared/i-1.sst", 2);
    /* the private file is missing: named with the resolved path */
    snprintf(path, sizeof path, "%s/job/chk-7", tmp);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s/job/chk-6/1-0/MANIFEST: missing (the savepoint is incomplete)",
             real);
    expect_read_fails(path, WEIR_ENOTFOUND, msg);
    snprintf(path, sizeof path, "%s/job", tmp);
    write_bytes(path, "chk-6/1-0/MANIFEST", 1);
    snprintf(path, sizeof path, "%s/job/chk-7", tmp);
    weir_ckpt_meta_t m;
    assert_int_equal(weir_savepoint_read(g_env, path, &m, base, sizeof base, err, sizeof err), 0);
    snprintf(msg, sizeof msg, "%s/job/chk-7", real);
    assert_string_equal(base, msg);
    weir_ckpt_meta_clear(&m);
    /* a version 1 checkpoint (no operator list) reads too */
    snprintf(path, sizeof path, "%s/job/chk-3", tmp);
    assert_int_equal(weir_mkdirs(path), 0);
    snprintf(path, sizeof path, "%s/job/chk-3/_metadata", tmp);
    text = with_sha(V1);
    write_text(path, text);
    free(text);
    snprintf(path, sizeof path, "%s/job/chk-3", tmp);
    assert_int_equal(weir_savepoint_read(g_env, path, &m, base, sizeof base, err, sizeof err), 0);
    assert_int_equal(m.id, 3);
    assert_int_equal(m.n_ops, 0);
    assert_int_equal(m.n_tasks, 2);
    weir_ckpt_meta_clear(&m);
    /* the shared file has another size */
    snprintf(path, sizeof path, "%s/job", tmp);
    write_bytes(path, "shared/i-1.sst", 9);
    snprintf(path, sizeof path, "%s/job/chk-7", tmp);
    snprintf(msg, sizeof msg, "%s/job/shared/i-1.sst: has 9 bytes, _metadata says 2", real);
    expect_read_fails(path, WEIR_ECORRUPT, msg);
    free(real);
    weir_test_tmpdir_remove(tmp);
}

static void test_read_failures(void **state) {
    (void)state;
    char *tmp = weir_test_tmpdir("spfail");
    char *real = realpath(tmp, NULL);
    char dir[1024], path[2048], msg[4096];
    /* no such path */
    snprintf(path, sizeof path, "%s/nothing", tmp);
    snprintf(msg, sizeof msg, "%s does not exist", path);
    expect_read_fails(path, WEIR_ENOTFOUND, msg);
    /* a directory without _metadata (a savepoint that never completed) */
    snprintf(dir, sizeof dir, "%s/half", tmp);
    write_bytes(dir, "1-0/a.sst", 5);
    snprintf(msg, sizeof msg,
             "%s: no _metadata: not a savepoint or checkpoint directory (was it completed?)", dir);
    expect_read_fails(dir, WEIR_ENOTFOUND, msg);
    expect_read_fails("", WEIR_EINVAL,
                      "no savepoint path: pass a savepoint or checkpoint directory");

    snprintf(dir, sizeof dir, "%s/sp", tmp);
    write_savepoint(dir);
    /* a keyed file missing, then short */
    snprintf(path, sizeof path, "%s/1-1/b.sst", dir);
    assert_int_equal(unlink(path), 0);
    snprintf(msg, sizeof msg, "%s/sp/1-1/b.sst: missing (the savepoint is incomplete)", real);
    expect_read_fails(dir, WEIR_ENOTFOUND, msg);
    write_bytes(dir, "1-1/b.sst", 3);
    snprintf(msg, sizeof msg, "%s/sp/1-1/b.sst: has 3 bytes, _metadata says 4", real);
    expect_read_fails(dir, WEIR_ECORRUPT, msg);
    /* a directory where a file should be: no object there (storage.h) */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(msg, sizeof msg, "%s/sp/1-1/b.sst: missing (the savepoint is incomplete)", real);
    expect_read_fails(dir, WEIR_ENOTFOUND, msg);
    assert_int_equal(rmdir(path), 0);
    write_bytes(dir, "1-1/b.sst", 4);
    /* _metadata: one byte changed, then cut short */
    snprintf(path, sizeof path, "%s/_metadata", dir);
    uint8_t *data;
    size_t len;
    assert_int_equal(weir_read_file(path, &data, &len), 0);
    data[20] ^= 0x20;
    assert_int_equal(weir_write_file_atomic(path, data, len), 0);
    weir_ckpt_meta_t m;
    char base[4096], err[1024] = "";
    assert_int_equal(weir_savepoint_read(g_env, dir, &m, base, sizeof base, err, sizeof err),
                     WEIR_ECORRUPT);
    snprintf(msg, sizeof msg, "%s/sp/_metadata is corrupt: sha256 mismatch", real);
    assert_memory_equal(err, msg, strlen(msg));
    data[20] ^= 0x20;
    assert_int_equal(weir_write_file_atomic(path, data, len - 30), 0);
    snprintf(msg, sizeof msg, "%s/sp/_metadata is corrupt: no final sha256 line (truncated?)",
             real);
    expect_read_fails(dir, WEIR_ECORRUPT, msg);
    assert_int_equal(weir_write_file_atomic(path, data, 0), 0);
    expect_read_fails(dir, WEIR_ECORRUPT, msg);
    free(data);
    weir_test_tmpdir_remove(tmp);
    free(real);
}

/* A savepoint whose _metadata is @p json (in a fresh directory), expected to be refused with a
 * message that contains @p needle. */
static void expect_metadata_refused(const char *json, const char *needle) {
    char *tmp = weir_test_tmpdir("spbad");
    char path[2048];
    snprintf(path, sizeof path, "%s/_metadata", tmp);
    char *text = with_sha(json);
    write_text(path, text);
    free(text);
    weir_ckpt_meta_t m;
    char base[4096], err[1024] = "";
    int rc = weir_savepoint_read(g_env, tmp, &m, base, sizeof base, err, sizeof err);
    if (rc != WEIR_ECORRUPT || !strstr(err, needle) || !strstr(err, "/_metadata is corrupt: "))
        fail_msg("rc %d, '%s', wanted '%s'", rc, err, needle);
    assert_int_equal(m.n_ops, 0);
    weir_test_tmpdir_remove(tmp);
}

static void test_read_inconsistent(void **state) {
    (void)state;
    const char *head = V2_HEAD "\"max_parallelism\":16," V2_OPS;
    char json[4096];
    /* a task of a subtask the job does not have */
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":1,\"subtask\":2,\"op_state\":null,\"keyed\":null}]}", head);
    expect_metadata_refused(json, "task 1-2: the job has no such subtask (2 vertices)");
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":1,\"subtask\":0},{\"vertex\":1,\"subtask\":0}]}", head);
    expect_metadata_refused(json, "task 1-0 is listed twice");
    /* an op_state that is not one array of the chain's length ([nil, nil] for a chain of 1) */
    snprintf(json, sizeof json, "%s\"tasks\":[{\"vertex\":0,\"subtask\":0,\"op_state\":\"ksDA\"}]}",
             head);
    expect_metadata_refused(json, "task 0-0: the operator state is not one msgpack array of 1 "
                                  "entries (one per operator of its chain)");
    /* an array header claiming 2^32-1 entries in 5 bytes */
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":0,\"subtask\":0,\"op_state\":\"3f////8=\"}]}", head);
    expect_metadata_refused(json, "task 0-0: the operator state is not one msgpack array");
    /* a keyed handle for a chain whose head is not keyed */
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":0,\"subtask\":0,\"keyed\":{\"version\":1}}]}", head);
    expect_metadata_refused(json, "task 0-0 has keyed state, but the head of its chain ('gen') is "
                                  "not keyed");
    snprintf(json, sizeof json, "%s\"tasks\":[{\"vertex\":1,\"subtask\":0,\"keyed\":[1]}]}", head);
    expect_metadata_refused(json, "task 1-0: the keyed-state handle is not a JSON object");
    /* handles: an unsafe name, an unknown layout, a missing list */
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":1,\"subtask\":0,\"keyed\":{\"checkpoint\":1,\"task\":"
             "\"1-0\",\"shared\":[],\"private\":[{\"name\":\"../../etc/passwd\",\"size\":1}]}}]}",
             head);
    expect_metadata_refused(json, "names the file '../../etc/passwd' of task '1-0': not a plain "
                                  "file name");
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":1,\"subtask\":0,\"keyed\":{\"layout\":\"cloud\","
             "\"checkpoint\":1,\"task\":\"1-0\",\"shared\":[],\"private\":[]}}]}",
             head);
    expect_metadata_refused(json, "task 1-0: keyed-state handle: unknown layout 'cloud'");
    snprintf(json, sizeof json,
             "%s\"tasks\":[{\"vertex\":1,\"subtask\":0,\"keyed\":{\"checkpoint\":1,\"task\":"
             "\"1-0\",\"shared\":[]}}]}",
             head);
    expect_metadata_refused(json, "task 1-0: keyed-state handle: missing array \"private\"");
    /* operators that contradict each other */
    expect_metadata_refused(
        V2_HEAD "\"max_parallelism\":16,\"operators\":[{\"uid\":\"a\",\"name\":\"x\",\"kind\":"
                "\"map\",\"vertex\":0,\"index\":0,\"parallelism\":1,\"keyed\":false,\"states\":[]},"
                "{\"uid\":\"a\",\"name\":\"y\",\"kind\":\"map\",\"vertex\":1,\"index\":0,"
                "\"parallelism\":1,\"keyed\":false,\"states\":[]}],\"tasks\":[]}",
        "uid 'a' names two operators");
    expect_metadata_refused(
        V2_HEAD
        "\"max_parallelism\":16,\"operators\":[{\"uid\":\"a\",\"name\":\"x\",\"kind\":"
        "\"map\",\"vertex\":0,\"index\":1,\"parallelism\":1,\"keyed\":false,\"states\":[]}],"
        "\"tasks\":[]}",
        "operator 0 'x': position 1 in the chain of vertex 0 is taken or out of range");
    expect_metadata_refused(
        V2_HEAD "\"max_parallelism\":16,\"operators\":[{\"uid\":\"a\",\"name\":\"x\",\"kind\":"
                "\"map\",\"vertex\":0,\"index\":0,\"parallelism\":17,\"keyed\":false,\"states\":"
                "[]}],\"tasks\":[]}",
        "operator 0 'x': parallelism 17 is not in 1..16");
    expect_metadata_refused(
        V2_HEAD "\"max_parallelism\":16,\"operators\":[{\"uid\":\"a\",\"name\":\"x\",\"kind\":"
                "\"map\",\"vertex\":1,\"index\":0,\"parallelism\":1,\"keyed\":false,\"states\":[]},"
                "{\"uid\":\"b\",\"name\":\"y\",\"kind\":\"map\",\"vertex\":1,\"index\":1,"
                "\"parallelism\":1,\"keyed\":false,\"states\":[]}],\"tasks\":[]}",
        "vertex 0 has no operator");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_graph),
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_v1_decodes),
        cmocka_unit_test(test_v2_by_hand),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_read_forms),
        cmocka_unit_test(test_read_checkpoint_layout),
        cmocka_unit_test(test_read_failures),
        cmocka_unit_test(test_read_inconsistent),
    };
    return cmocka_run_group_tests(tests, setup_env, teardown_env);
}
