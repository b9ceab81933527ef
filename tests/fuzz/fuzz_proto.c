/* libFuzzer target: the control-protocol decoder, weir_msg_decode (common/proto.h), i.e. every
 * message a job manager or task manager reads from its ZeroMQ socket.
 *
 * Properties checked on every input (besides ASan/UBSan/LeakSanitizer):
 * - a refused input returns WEIR_EPROTO with a one-line, non-empty reason and leaves the message
 *   cleared (all zero);
 * - an accepted input round-trips: encode(decode(x)) succeeds, decodes again to a message whose
 *   encoding is the same bytes, is no longer than x (the encoder writes the smallest formats), and
 *   no proper prefix of it decodes.
 * Seeds: one valid encoding of every message type of WEIR_PROTO_MESSAGES in three variants (all
 * fields set, every nullable field nil, integers at their bounds), made with weir_msg_encode.
 *
 * Owns nothing beyond one input; no global state. Threading: libFuzzer's thread. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/proto.h"
#include "fuzz_util.h"

#define FUZZ_MAX_INPUT 65536u

static const char JOB[] = "0123456789abcdef0123456789abcdef";
static const char SHA[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

typedef enum variant { FULL, NILS, BOUNDS } variant_t;

/* What the pointers of a seed message refer to. */
typedef struct seed_store {
    weir_msg_task_state_t tasks[2];
    char *args[2];
    char *row0[1], *row1[2];
    char **placement[2];
    uint32_t par[2];
    uint8_t bytes[6];
} seed_store_t;

/* Fills every field of @p m that any type uses (the encoder writes only its type's fields);
 * pointers refer to string literals or to @p st, nothing is allocated. */
static void fill(weir_msg_t *m, weir_msg_type_t type, variant_t v, seed_store_t *st) {
    static const uint8_t bytes[] = {0x00, 0x01, 0xc0, 0xff, 'o', 'p'};
    bool nil = v == NILS, big = v == BOUNDS;
    memcpy(st->bytes, bytes, sizeof bytes);
    memset(m, 0, sizeof *m);
    m->type = type;
    m->tm_id = nil ? NULL : "tm-1";
    m->data_address = nil ? NULL : "tcp://127.0.0.1:6121";
    m->host = nil ? NULL : "localhost";
    m->slots = big ? UINT32_MAX : 4;
    m->pid = big ? INT64_MIN : 4242;
    m->heartbeat_interval_ms = big ? INT64_MAX : 1000;
    uint32_t n_tasks = type == WEIR_MSG_TASK_STATE ? 1 : nil ? 0 : 2;
    for (uint32_t i = 0; i < 2; i++) {
        weir_msg_task_state_t *t = &st->tasks[i];
        memset(t, 0, sizeof *t);
        if (!nil)
            memcpy(t->job_id, JOB, sizeof JOB);
        t->attempt = big ? UINT32_MAX : 1 + i;
        t->vertex = big ? UINT32_MAX : i;
        t->subtask = big ? UINT32_MAX : 0;
        t->state = big ? WEIR_TASK_FAILED : WEIR_TASK_RUNNING;
        t->message = nil ? NULL : "failed: disk full";
        uint64_t *c = (uint64_t *)&t->metrics;
        for (size_t k = 0; k < sizeof t->metrics / sizeof *c; k++)
            c[k] = big ? UINT64_MAX : 1000 * (k + 1);
    }
    m->tasks = st->tasks;
    m->n_tasks = n_tasks;
    if (!nil)
        memcpy(m->job_id, JOB, sizeof JOB);
    m->attempt = big ? UINT32_MAX : 3;
    m->job_name = nil ? NULL : "wordcount";
    if (!nil)
        memcpy(m->plugin_sha256, SHA, sizeof SHA);
    m->graph_json = nil ? NULL : "{\"name\":\"wc\",\"nodes\":[]}";
    st->args[0] = "--input";
    st->args[1] = nil ? NULL : "/data/in.txt";
    m->args = st->args;
    m->n_args = nil ? 0 : 2;
    /* placement: vertex 0 with 1 subtask, vertex 1 with 2; the DEPLOY names vertex 1 subtask 1 */
    st->row0[0] = nil ? NULL : "tcp://127.0.0.1:6121";
    st->row1[0] = "tcp://127.0.0.1:6121";
    st->row1[1] = nil ? NULL : "tcp://127.0.0.1:6122";
    st->placement[0] = st->row0;
    st->placement[1] = st->row1;
    st->par[0] = 1;
    st->par[1] = 2;
    m->placement = st->placement;
    m->vertex_parallelism = st->par;
    m->n_vertices = 2;
    m->vertex = 1;
    m->subtask = 1;
    m->checkpoint_mode = big ? WEIR_CHECKPOINT_AT_LEAST_ONCE : WEIR_CHECKPOINT_EXACTLY_ONCE;
    m->checkpoint_dir = nil ? NULL : "/ck/0123456789abcdef0123456789abcdef";
    m->restore_checkpoint_id = big ? UINT64_MAX : 7;
    m->restore_op_state = nil ? NULL : st->bytes;
    m->restore_op_state_len = nil ? 0 : sizeof bytes;
    m->restore_keyed_handle = nil ? NULL : "{\"files\":[\"a.sst\"]}";
    m->checkpoint_id = big ? UINT64_MAX : 9;
    m->checkpoint_timestamp = big ? INT64_MAX : 1700000000000;
    m->ck_kind = big ? WEIR_CK_STOP : WEIR_CK_SAVEPOINT;
    m->target = nil ? NULL : "/sp/savepoint-012345-0123456789ab";
    m->final = !nil;
    m->op_state = nil ? NULL : st->bytes;
    m->op_state_len = nil ? 0 : sizeof bytes;
    m->keyed_handle = nil ? NULL : "{\"files\":[]}";
    m->state_size = big ? UINT64_MAX : 1 << 20;
    m->uploaded_size = big ? UINT64_MAX : 4096;
    m->alignment_ns = 5;
    m->sync_ns = big ? UINT64_MAX : 300;
    m->async_ns = 70000;
    if (!nil)
        memcpy(m->blob_sha256, SHA, sizeof SHA);
    m->blob = nil ? NULL : st->bytes;
    m->blob_len = nil ? 0 : sizeof bytes;
    m->error = nil ? NULL : "blob missing";
}

static void seed_type(weir_msg_type_t type, const char *name) {
    static const char *variants[] = {"full", "nil", "bounds"};
    for (int v = FULL; v <= BOUNDS; v++) {
        weir_msg_t m;
        seed_store_t st;
        fill(&m, type, (variant_t)v, &st);
        uint8_t *buf;
        size_t len;
        int rc = weir_msg_encode(&m, &buf, &len);
        WEIR_FUZZ_CHECK(rc == 0, "seed %s/%s does not encode: %d", name, variants[v], rc);
        weir_msg_t back;
        char err[256] = "";
        rc = weir_msg_decode(buf, len, &back, err, sizeof err);
        WEIR_FUZZ_CHECK(rc == 0, "seed %s/%s does not decode: %s", name, variants[v], err);
        weir_msg_clear(&back);
        weir_fuzz_seedf(buf, len, "%s-%s", name, variants[v]);
        free(buf);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
#define SEED_TYPE(name, number, direction, when) seed_type(WEIR_MSG_##name, #name);
    WEIR_PROTO_MESSAGES(SEED_TYPE)
#undef SEED_TYPE
    return 0;
}

static bool all_zero(const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_MAX_INPUT)
        return -1;
    weir_msg_t m;
    char err[256] = "";
    int rc = weir_msg_decode(data, size, &m, err, sizeof err);
    if (rc != 0) {
        WEIR_FUZZ_CHECK(rc == WEIR_EPROTO, "decode returned %d", rc);
        WEIR_FUZZ_CHECK(err[0] && !strchr(err, '\n'), "reason not one line: '%s'", err);
        WEIR_FUZZ_CHECK(all_zero(&m, sizeof m), "refused message not cleared (%s)", err);
        return 0;
    }
    uint8_t *e1, *e2;
    size_t l1, l2;
    rc = weir_msg_encode(&m, &e1, &l1);
    WEIR_FUZZ_CHECK(rc == 0, "a decoded message of type %d does not encode: %d", m.type, rc);
    WEIR_FUZZ_CHECK(l1 <= size, "re-encoding grew from %zu to %zu bytes", size, l1);
    weir_msg_t m2;
    rc = weir_msg_decode(e1, l1, &m2, err, sizeof err);
    WEIR_FUZZ_CHECK(rc == 0, "re-encoded message does not decode: %s", err);
    WEIR_FUZZ_CHECK(m2.type == m.type, "type %d became %d", m.type, m2.type);
    rc = weir_msg_encode(&m2, &e2, &l2);
    WEIR_FUZZ_CHECK(rc == 0 && l2 == l1 && !memcmp(e1, e2, l1),
                    "encode(decode(encode(m))) differs from encode(m) (%zu vs %zu bytes)", l1, l2);
    weir_msg_t m3;
    rc = weir_msg_decode(e1, l1 - 1, &m3, err, sizeof err);
    WEIR_FUZZ_CHECK(rc == WEIR_EPROTO, "a proper prefix (%zu of %zu bytes) decodes", l1 - 1, l1);
    free(e1);
    free(e2);
    weir_msg_clear(&m2);
    weir_msg_clear(&m);
    return 0;
}
