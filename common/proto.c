/* Owns the wire form of control-plane messages: the encoder and the bounds-checked decoder, both
 * expanded from the tables in proto.h (WEIR_PROTO_MESSAGES, WEIR_PROTO_FIELDS_<TYPE>, _TASK and
 * _METRICS), the one place the field order is written. Each field KIND has one packer ENC_<KIND>
 * and one reader DEC_<KIND> below; hand-written per-kind code is left only for what is genuinely
 * special: the task record and the DEPLOY argument list and placement table (nested arrays whose
 * lengths come from other fields, and the placement's vertex/subtask check).
 * Encoding uses msgpack-c's packer (smallest format of every integer); decoding uses a small
 * bounds-checked reader of its own instead of msgpack_unpack, because msgpack-c allocates a
 * declared array length up front (a 5-byte garbage header could ask for 100 GB).
 * Invariants: decode never reads past len, checks every count and length against the bytes left
 * before allocating, rejects trailing bytes, and on error leaves the message cleared with one line
 * "bad <TYPE> message: <field>: <what>" in errstr (the unknown-type and version errors excepted).
 * Threading: stateless; any thread. */
#include "proto.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"

const char *weir_task_state_name(weir_task_state_t s) {
    switch (s) {
    case WEIR_TASK_CREATED:
        return "CREATED";
    case WEIR_TASK_DEPLOYING:
        return "DEPLOYING";
    case WEIR_TASK_RUNNING:
        return "RUNNING";
    case WEIR_TASK_FINISHED:
        return "FINISHED";
    case WEIR_TASK_CANCELING:
        return "CANCELING";
    case WEIR_TASK_CANCELED:
        return "CANCELED";
    case WEIR_TASK_FAILED:
        return "FAILED";
    }
    return "UNKNOWN";
}

/* ---- the tables ---------------------------------------------------------------------------- */

#define COUNT_FIELD(kind, field, bound, desc) +1
#define N_TASK_FIELDS (0 WEIR_PROTO_FIELDS_TASK(COUNT_FIELD))
#define N_METRICS (0 WEIR_PROTO_FIELDS_METRICS(COUNT_FIELD))
_Static_assert(sizeof(weir_task_metrics_t) == N_METRICS * sizeof(uint64_t),
               "every member of weir_task_metrics_t is a row of WEIR_PROTO_FIELDS_METRICS");

/* Name and number of fields after [type, version] of every type; name NULL: not a type. */
static const struct {
    const char *name;
    uint32_t n_fields;
} MSGS[] = {
#define MSG_ENTRY(name, number, direction, when)                                                   \
    [WEIR_MSG_##name] = {#name, 0 WEIR_PROTO_FIELDS_##name(COUNT_FIELD)},
    WEIR_PROTO_MESSAGES(MSG_ENTRY)
#undef MSG_ENTRY
};

static const char *msg_type_name(uint32_t t) {
    return t < sizeof MSGS / sizeof MSGS[0] ? MSGS[t].name : NULL;
}

/* Compile error unless @p cond: how the BOUND column of a row is checked against its kind. */
#define BOUND_IS(cond) (void)sizeof(char[(cond) ? 1 : -1])

/* ---- encoding ------------------------------------------------------------------------------ */

/* Every packer returns 0, WEIR_ENOMEM (msgpack-c failed to grow its buffer) or WEIR_EINVAL (the C
 * message is inconsistent: its counts promise arrays that are NULL). */
#define MP(expr) ((expr) == 0 ? 0 : WEIR_ENOMEM)

static int pack_str(msgpack_packer *pk, const char *s) {
    if (!s)
        return MP(msgpack_pack_nil(pk));
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) != 0)
        return WEIR_ENOMEM;
    return MP(msgpack_pack_str_body(pk, s, n));
}

static int pack_bin(msgpack_packer *pk, const uint8_t *data, size_t len) {
    if (!data)
        return MP(msgpack_pack_nil(pk));
    if (msgpack_pack_bin(pk, len) != 0)
        return WEIR_ENOMEM;
    return MP(msgpack_pack_bin_body(pk, data, len));
}

/* ENC_<KIND>(packer, struct pointer, C field, bound): the packer of each field kind. */
#define ENC_U32(pk, o, f, b) MP(msgpack_pack_uint32(pk, (o)->f))
#define ENC_U64(pk, o, f, b) MP(msgpack_pack_uint64(pk, (o)->f))
#define ENC_I64(pk, o, f, b) MP(msgpack_pack_int64(pk, (o)->f))
#define ENC_BOOL(pk, o, f, b) MP((o)->f ? msgpack_pack_true(pk) : msgpack_pack_false(pk))
#define ENC_STR(pk, o, f, b) pack_str(pk, (o)->f)
#define ENC_FIXSTR(pk, o, f, b) pack_str(pk, (o)->f)
#define ENC_BIN(pk, o, f, b) pack_bin(pk, (o)->f, (o)->f##_len)
#define ENC_TASK_STATE(pk, o, f, b) MP(msgpack_pack_uint32(pk, (uint32_t)(o)->f))
#define ENC_CHECKPOINT_MODE(pk, o, f, b) MP(msgpack_pack_uint32(pk, (uint32_t)(o)->f))
#define ENC_METRICS(pk, o, f, b) pack_metrics(pk, &(o)->f)
#define ENC_TASK(pk, o, f, b) pack_tasks(pk, o, true)
#define ENC_TASKS(pk, o, f, b) pack_tasks(pk, o, false)
#define ENC_ARGS(pk, o, f, b) pack_args(pk, o)
#define ENC_PARALLELISM(pk, o, f, b) pack_parallelism(pk, o)
#define ENC_PLACEMENT(pk, o, f, b) pack_placement(pk, o)

/* One row of a table, in a function whose struct pointer is `o` and whose result is `rc`. */
#define ENC_FIELD(kind, f, b, desc)                                                                \
    if ((rc = ENC_##kind(pk, o, f, b)) < 0)                                                        \
        return rc;

static int pack_metrics(msgpack_packer *pk, const weir_task_metrics_t *o) {
    int rc = MP(msgpack_pack_array(pk, N_METRICS));
    if (rc < 0)
        return rc;
    WEIR_PROTO_FIELDS_METRICS(ENC_FIELD)
    return 0;
}

static int pack_task(msgpack_packer *pk, const weir_msg_task_state_t *o) {
    int rc = MP(msgpack_pack_array(pk, N_TASK_FIELDS));
    if (rc < 0)
        return rc;
    WEIR_PROTO_FIELDS_TASK(ENC_FIELD)
    return 0;
}

/* TASK (TASK_STATE: the record itself) or TASKS (HEARTBEAT: an array of records). */
static int pack_tasks(msgpack_packer *pk, const weir_msg_t *m, bool exactly_one) {
    if ((exactly_one && m->n_tasks != 1) || (m->n_tasks > 0 && !m->tasks))
        return WEIR_EINVAL;
    int rc = exactly_one ? 0 : MP(msgpack_pack_array(pk, m->n_tasks));
    for (uint32_t i = 0; rc == 0 && i < m->n_tasks; i++)
        rc = pack_task(pk, &m->tasks[i]);
    return rc;
}

static int pack_args(msgpack_packer *pk, const weir_msg_t *m) {
    int rc = MP(msgpack_pack_array(pk, m->n_args));
    for (uint32_t i = 0; rc == 0 && i < m->n_args; i++)
        rc = pack_str(pk, m->args[i]);
    return rc;
}

static int pack_parallelism(msgpack_packer *pk, const weir_msg_t *m) {
    if (m->n_vertices > 0 && (!m->vertex_parallelism || !m->placement))
        return WEIR_EINVAL;
    int rc = MP(msgpack_pack_array(pk, m->n_vertices));
    for (uint32_t v = 0; rc == 0 && v < m->n_vertices; v++)
        rc = MP(msgpack_pack_uint32(pk, m->vertex_parallelism[v]));
    return rc;
}

static int pack_placement(msgpack_packer *pk, const weir_msg_t *m) {
    int rc = MP(msgpack_pack_array(pk, m->n_vertices));
    for (uint32_t v = 0; rc == 0 && v < m->n_vertices; v++) {
        rc = MP(msgpack_pack_array(pk, m->vertex_parallelism[v]));
        for (uint32_t s = 0; rc == 0 && s < m->vertex_parallelism[v]; s++)
            rc = pack_str(pk, m->placement[v] ? m->placement[v][s] : NULL);
    }
    return rc;
}

static int pack_msg(msgpack_packer *pk, const weir_msg_t *o) {
    int rc;
    if (msgpack_pack_array(pk, 2 + MSGS[o->type].n_fields) != 0 ||
        msgpack_pack_uint32(pk, (uint32_t)o->type) != 0 ||
        msgpack_pack_uint32(pk, WEIR_PROTO_VERSION) != 0)
        return WEIR_ENOMEM;
    switch (o->type) {
#define ENC_MSG(name, number, direction, when)                                                     \
    case WEIR_MSG_##name:                                                                          \
        WEIR_PROTO_FIELDS_##name(ENC_FIELD) break;
        WEIR_PROTO_MESSAGES(ENC_MSG)
#undef ENC_MSG
    }
    return 0;
}

int weir_msg_encode(const weir_msg_t *msg, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!msg_type_name(msg->type))
        return WEIR_EINVAL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = pack_msg(&pk, msg);
    if (rc < 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    /* An empty sbuffer has data == NULL; every message has at least 3 bytes. */
    *out = (uint8_t *)sb.data;
    *out_len = sb.size;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
    const char *type; /* message type name for errors */
    char *err;
    size_t errlen;
} rd_t;

static int rd_fail(rd_t *r, const char *field, const char *what) {
    weir_fmt(r->err, r->errlen, "bad %s message: %s: %s", r->type ? r->type : "control", field,
             what);
    return -1;
}

static bool rd_need(rd_t *r, size_t n) {
    return (size_t)(r->end - r->p) >= n;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads an integer of any msgpack integer format; *neg set when it is negative. */
static int rd_any_int(rd_t *r, const char *field, uint64_t *mag, bool *neg) {
    if (!rd_need(r, 1))
        return rd_fail(r, field, "truncated");
    uint8_t b = *r->p;
    int n = 0;
    bool is_signed = false;
    if (b <= 0x7f) {
        r->p++;
        *mag = b;
        *neg = false;
        return 0;
    }
    if (b >= 0xe0) {
        r->p++;
        *neg = true;
        *mag = (uint64_t)(-(int64_t)(int8_t)b);
        return 0;
    }
    switch (b) {
    case 0xcc:
        n = 1;
        break;
    case 0xcd:
        n = 2;
        break;
    case 0xce:
        n = 4;
        break;
    case 0xcf:
        n = 8;
        break;
    case 0xd0:
        n = 1;
        is_signed = true;
        break;
    case 0xd1:
        n = 2;
        is_signed = true;
        break;
    case 0xd2:
        n = 4;
        is_signed = true;
        break;
    case 0xd3:
        n = 8;
        is_signed = true;
        break;
    default:
        return rd_fail(r, field, "expected an integer");
    }
    if (!rd_need(r, 1 + (size_t)n))
        return rd_fail(r, field, "truncated");
    uint64_t v = be(r->p + 1, n);
    r->p += 1 + n;
    if (is_signed) {
        int64_t s;
        if (n == 1)
            s = (int8_t)v;
        else if (n == 2)
            s = (int16_t)v;
        else if (n == 4)
            s = (int32_t)v;
        else
            s = (int64_t)v;
        *neg = s < 0;
        *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    } else {
        *neg = false;
        *mag = v;
    }
    return 0;
}

static int rd_u64(rd_t *r, const char *field, uint64_t max, uint64_t *out) {
    uint64_t mag;
    bool neg;
    if (rd_any_int(r, field, &mag, &neg) < 0)
        return -1;
    if ((neg && mag != 0) || mag > max)
        return rd_fail(r, field, "integer out of range");
    *out = mag;
    return 0;
}

static int rd_u32(rd_t *r, const char *field, uint32_t max, uint32_t *out) {
    uint64_t v;
    if (rd_u64(r, field, max, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int rd_i64(rd_t *r, const char *field, int64_t max, int64_t *out) {
    uint64_t mag;
    bool neg;
    if (rd_any_int(r, field, &mag, &neg) < 0)
        return -1;
    if (!neg && mag > (uint64_t)max)
        return rd_fail(r, field, "integer out of range");
    if (neg && mag > (uint64_t)INT64_MAX + 1)
        return rd_fail(r, field, "integer out of range");
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static bool rd_nil(rd_t *r) {
    if (rd_need(r, 1) && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

static int rd_bool(rd_t *r, const char *field, bool *out) {
    if (rd_need(r, 1) && (*r->p == 0xc2 || *r->p == 0xc3)) {
        *out = *r->p == 0xc3;
        r->p++;
        return 0;
    }
    return rd_fail(r, field, "expected a boolean");
}

/* Reads an array header; the count is checked against the bytes left (>= 1 byte each). */
static int rd_array(rd_t *r, const char *field, uint32_t *n) {
    if (!rd_need(r, 1))
        return rd_fail(r, field, "truncated");
    uint8_t b = *r->p;
    uint64_t count;
    if ((b & 0xf0) == 0x90) {
        count = b & 0x0f;
        r->p++;
    } else if (b == 0xdc || b == 0xdd) {
        int w = b == 0xdc ? 2 : 4;
        if (!rd_need(r, 1 + (size_t)w))
            return rd_fail(r, field, "truncated");
        count = be(r->p + 1, w);
        r->p += 1 + w;
    } else {
        return rd_fail(r, field, "expected an array");
    }
    if (count > (uint64_t)(r->end - r->p))
        return rd_fail(r, field, "array longer than the message");
    *n = (uint32_t)count;
    return 0;
}

static int rd_expect_array(rd_t *r, const char *field, uint32_t want) {
    uint32_t n;
    if (rd_array(r, field, &n) < 0)
        return -1;
    if (n != want) {
        char what[64];
        weir_fmt(what, sizeof what, "expected %u elements, got %u", want, n);
        return rd_fail(r, field, what);
    }
    return 0;
}

/* Reads str (str formats) or bin (bin formats) bytes, zero-copy. */
static int rd_bytes(rd_t *r, const char *field, bool bin, const uint8_t **data, size_t *len) {
    if (!rd_need(r, 1))
        return rd_fail(r, field, "truncated");
    uint8_t b = *r->p;
    uint64_t n;
    int w;
    if (!bin && (b & 0xe0) == 0xa0) {
        n = b & 0x1f;
        w = 0;
    } else if ((!bin && b == 0xd9) || (bin && b == 0xc4)) {
        w = 1;
    } else if ((!bin && b == 0xda) || (bin && b == 0xc5)) {
        w = 2;
    } else if ((!bin && b == 0xdb) || (bin && b == 0xc6)) {
        w = 4;
    } else {
        return rd_fail(r, field, bin ? "expected binary data" : "expected a string");
    }
    if (!rd_need(r, 1 + (size_t)w))
        return rd_fail(r, field, "truncated");
    if (w > 0)
        n = be(r->p + 1, w);
    r->p += 1 + w;
    if (n > (uint64_t)(r->end - r->p))
        return rd_fail(r, field, "truncated");
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

/* bin or nil into a malloc'd copy (NULL for nil). */
static int rd_opt_bin(rd_t *r, const char *field, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (rd_nil(r))
        return 0;
    const uint8_t *d;
    size_t n;
    if (rd_bytes(r, field, true, &d, &n) < 0)
        return -1;
    *out = malloc(n ? n : 1);
    if (!*out)
        return rd_fail(r, field, "out of memory");
    memcpy(*out, d, n);
    *out_len = n;
    return 0;
}

/* A nullable heap string (str or nil). */
static int rd_str(rd_t *r, const char *field, char **out) {
    *out = NULL;
    if (rd_nil(r))
        return 0;
    const uint8_t *d;
    size_t n;
    if (rd_bytes(r, field, false, &d, &n) < 0)
        return -1;
    if (memchr(d, '\0', n))
        return rd_fail(r, field, "string contains NUL");
    char *s = malloc(n + 1);
    if (!s)
        return rd_fail(r, field, "out of memory");
    memcpy(s, d, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

/* A string into a fixed array of @p cap bytes (at most cap-1 characters; nil = ""). */
static int rd_fixstr(rd_t *r, const char *field, char *out, size_t cap) {
    out[0] = '\0';
    if (rd_nil(r))
        return 0;
    const uint8_t *d;
    size_t n;
    if (rd_bytes(r, field, false, &d, &n) < 0)
        return -1;
    if (n >= cap)
        return rd_fail(r, field, "string too long");
    if (memchr(d, '\0', n))
        return rd_fail(r, field, "string contains NUL");
    memcpy(out, d, n);
    out[n] = '\0';
    return 0;
}

static int rd_enum(rd_t *r, const char *field, uint32_t max, const char *unknown, uint32_t *out) {
    if (rd_u32(r, field, UINT32_MAX, out) < 0)
        return -1;
    if (*out > max)
        return rd_fail(r, field, unknown);
    return 0;
}

static int rd_task_state(rd_t *r, const char *field, uint32_t max, weir_task_state_t *out) {
    uint32_t v;
    if (rd_enum(r, field, max, "unknown task state", &v) < 0)
        return -1;
    *out = (weir_task_state_t)v;
    return 0;
}

static int rd_checkpoint_mode(rd_t *r, const char *field, uint32_t max,
                              weir_checkpoint_mode_t *out) {
    uint32_t v;
    if (rd_enum(r, field, max, "unknown mode", &v) < 0)
        return -1;
    *out = (weir_checkpoint_mode_t)v;
    return 0;
}

/* DEC_<KIND>(reader, field name for errors, struct pointer, C field, bound): the reader of each
 * field kind; BOUND_IS makes a row whose bound does not fit its kind a compile error. */
#define DEC_U32(r, n, o, f, b) (BOUND_IS((b) <= UINT32_MAX), rd_u32(r, n, b, &(o)->f))
#define DEC_U64(r, n, o, f, b) rd_u64(r, n, b, &(o)->f)
#define DEC_I64(r, n, o, f, b) (BOUND_IS((b) >= 0), rd_i64(r, n, b, &(o)->f))
#define DEC_BOOL(r, n, o, f, b) (BOUND_IS((b) == 0), rd_bool(r, n, &(o)->f))
#define DEC_STR(r, n, o, f, b) (BOUND_IS((b) == 0), rd_str(r, n, &(o)->f))
#define DEC_FIXSTR(r, n, o, f, b)                                                                  \
    (BOUND_IS(sizeof((o)->f) == (b) + 1), rd_fixstr(r, n, (o)->f, (b) + 1))
#define DEC_BIN(r, n, o, f, b) (BOUND_IS((b) == 0), rd_opt_bin(r, n, &(o)->f, &(o)->f##_len))
#define DEC_TASK_STATE(r, n, o, f, b) (BOUND_IS((b) <= UINT32_MAX), rd_task_state(r, n, b, &(o)->f))
#define DEC_CHECKPOINT_MODE(r, n, o, f, b)                                                         \
    (BOUND_IS((b) <= UINT32_MAX), rd_checkpoint_mode(r, n, b, &(o)->f))
#define DEC_METRICS(r, n, o, f, b) (BOUND_IS((b) == 0), rd_metrics(r, &(o)->f))
#define DEC_TASK(r, n, o, f, b) (BOUND_IS((b) == 0), rd_tasks(r, n, o, true))
#define DEC_TASKS(r, n, o, f, b) (BOUND_IS((b) == 0), rd_tasks(r, n, o, false))
#define DEC_ARGS(r, n, o, f, b) (BOUND_IS((b) == 0), rd_args(r, n, o))
#define DEC_PARALLELISM(r, n, o, f, b) (BOUND_IS((b) == 0), rd_parallelism(r, n, o))
#define DEC_PLACEMENT(r, n, o, f, b) (BOUND_IS((b) == 0), rd_placement(r, n, o))

/* One row of a table, in a function whose struct pointer is `o`; the name in errors is the C
 * field, "task.<field>" in a task record and "task.metrics" in its metrics. */
#define DEC_MSG_FIELD(kind, f, b, desc)                                                            \
    if (DEC_##kind(r, #f, o, f, b) < 0)                                                            \
        return -1;
#define DEC_TASK_FIELD(kind, f, b, desc)                                                           \
    if (DEC_##kind(r, "task." #f, o, f, b) < 0)                                                    \
        return -1;
#define DEC_METRICS_FIELD(kind, f, b, desc)                                                        \
    if (DEC_##kind(r, "task.metrics", o, f, b) < 0)                                                \
        return -1;

static int rd_metrics(rd_t *r, weir_task_metrics_t *o) {
    if (rd_expect_array(r, "task.metrics", N_METRICS) < 0)
        return -1;
    WEIR_PROTO_FIELDS_METRICS(DEC_METRICS_FIELD)
    return 0;
}

static int rd_task(rd_t *r, weir_msg_task_state_t *o) {
    if (rd_expect_array(r, "task", N_TASK_FIELDS) < 0)
        return -1;
    WEIR_PROTO_FIELDS_TASK(DEC_TASK_FIELD)
    return 0;
}

/* TASK (TASK_STATE: the record itself) or TASKS (HEARTBEAT: an array of records). */
static int rd_tasks(rd_t *r, const char *field, weir_msg_t *m, bool exactly_one) {
    uint32_t n = 1;
    if (!exactly_one && rd_array(r, field, &n) < 0)
        return -1;
    m->tasks = calloc(n ? n : 1, sizeof *m->tasks);
    if (!m->tasks)
        return rd_fail(r, field, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        m->n_tasks = i + 1; /* so that clear frees what was decoded */
        if (rd_task(r, &m->tasks[i]) < 0)
            return -1;
    }
    m->n_tasks = n;
    return 0;
}

static int rd_args(rd_t *r, const char *field, weir_msg_t *m) {
    uint32_t n;
    if (rd_array(r, field, &n) < 0)
        return -1;
    m->args = calloc(n ? n : 1, sizeof *m->args);
    if (!m->args)
        return rd_fail(r, field, "out of memory");
    m->n_args = n;
    for (uint32_t i = 0; i < n; i++)
        if (rd_str(r, field, &m->args[i]) < 0)
            return -1;
    return 0;
}

/* Also allocates the rows of the placement, which follows with one row per vertex. */
static int rd_parallelism(rd_t *r, const char *field, weir_msg_t *m) {
    uint32_t n;
    if (rd_array(r, field, &n) < 0)
        return -1;
    m->vertex_parallelism = calloc(n ? n : 1, sizeof *m->vertex_parallelism);
    m->placement = calloc(n ? n : 1, sizeof *m->placement);
    if (!m->vertex_parallelism || !m->placement)
        return rd_fail(r, field, "out of memory");
    m->n_vertices = n;
    for (uint32_t v = 0; v < n; v++)
        if (rd_u32(r, field, UINT32_MAX, &m->vertex_parallelism[v]) < 0)
            return -1;
    return 0;
}

/* Row v holds vertex_parallelism[v] addresses; the vertex and subtask of the DEPLOY (decoded
 * before it) must name one of them. */
static int rd_placement(rd_t *r, const char *field, weir_msg_t *m) {
    if (rd_expect_array(r, field, m->n_vertices) < 0)
        return -1;
    for (uint32_t v = 0; v < m->n_vertices; v++) {
        uint32_t p = m->vertex_parallelism[v];
        if (rd_expect_array(r, field, p) < 0)
            return -1;
        m->placement[v] = calloc(p ? p : 1, sizeof *m->placement[v]);
        if (!m->placement[v])
            return rd_fail(r, field, "out of memory");
        for (uint32_t s = 0; s < p; s++)
            if (rd_str(r, field, &m->placement[v][s]) < 0)
                return -1;
    }
    if (m->vertex >= m->n_vertices || m->subtask >= m->vertex_parallelism[m->vertex])
        return rd_fail(r, "vertex/subtask", "outside the placement");
    return 0;
}

/* The fields of message @p o (its type set), after [type, version]. */
static int rd_fields(rd_t *r, weir_msg_t *o) {
    switch (o->type) {
#define DEC_MSG(name, number, direction, when)                                                     \
    case WEIR_MSG_##name:                                                                          \
        WEIR_PROTO_FIELDS_##name(DEC_MSG_FIELD) break;
        WEIR_PROTO_MESSAGES(DEC_MSG)
#undef DEC_MSG
    }
    return 0;
}

int weir_msg_decode(const uint8_t *data, size_t len, weir_msg_t *msg, char *errstr, size_t errlen) {
    memset(msg, 0, sizeof *msg);
    rd_t r = {.p = data, .end = data + len, .type = NULL, .err = errstr, .errlen = errlen};
    uint32_t n, type, version;
    if (!data || len == 0) {
        rd_fail(&r, "message", "empty");
        return WEIR_EPROTO;
    }
    if (rd_array(&r, "message", &n) < 0)
        goto fail;
    if (n < 2) {
        rd_fail(&r, "message", "expected [type, version, ...]");
        goto fail;
    }
    if (rd_u32(&r, "type", UINT32_MAX, &type) < 0)
        goto fail;
    r.type = msg_type_name(type);
    if (!r.type) {
        weir_fmt(errstr, errlen, "unknown control message type %u", type);
        goto fail;
    }
    if (rd_u32(&r, "version", UINT32_MAX, &version) < 0)
        goto fail;
    if (version != WEIR_PROTO_VERSION) {
        weir_fmt(errstr, errlen,
                 "%s message of protocol version %u, expected %u: upgrade both sides", r.type,
                 version, WEIR_PROTO_VERSION);
        goto fail;
    }
    if (n != 2 + MSGS[type].n_fields) {
        char what[64];
        weir_fmt(what, sizeof what, "expected %u fields, got %u", MSGS[type].n_fields, n - 2);
        rd_fail(&r, "message", what);
        goto fail;
    }
    msg->type = (weir_msg_type_t)type;
    if (rd_fields(&r, msg) < 0)
        goto fail;
    if (r.p != r.end) {
        rd_fail(&r, "message", "trailing bytes");
        goto fail;
    }
    return 0;
fail:
    weir_msg_clear(msg);
    return WEIR_EPROTO;
}

void weir_msg_clear(weir_msg_t *msg) {
    if (!msg)
        return;
    free(msg->tm_id);
    free(msg->data_address);
    free(msg->host);
    if (msg->tasks) {
        for (uint32_t i = 0; i < msg->n_tasks; i++)
            free(msg->tasks[i].message);
        free(msg->tasks);
    }
    free(msg->job_name);
    free(msg->graph_json);
    if (msg->args) {
        for (uint32_t i = 0; i < msg->n_args; i++)
            free(msg->args[i]);
        free(msg->args);
    }
    if (msg->placement) {
        for (uint32_t v = 0; v < msg->n_vertices; v++) {
            if (!msg->placement[v])
                continue;
            uint32_t p = msg->vertex_parallelism ? msg->vertex_parallelism[v] : 0;
            for (uint32_t s = 0; s < p; s++)
                free(msg->placement[v][s]);
            free(msg->placement[v]);
        }
        free(msg->placement);
    }
    free(msg->vertex_parallelism);
    free(msg->blob);
    free(msg->log_tail);
    free(msg->error);
    free(msg->checkpoint_dir);
    free(msg->restore_op_state);
    free(msg->restore_keyed_handle);
    free(msg->op_state);
    free(msg->keyed_handle);
    free(msg->target);
    memset(msg, 0, sizeof *msg);
}
