/* Owns the wire form of control-plane messages (see proto.h): each message is one msgpack array
 * [type, version, fields...]. Field order per type (the only place it is written down):
 *   REGISTER       tm_id, data_address, host, slots, pid
 *   REGISTERED     heartbeat_interval_ms
 *   HEARTBEAT      tm_id, [task...]
 *   HEARTBEAT_ACK  (none)
 *   UNKNOWN        (none)
 *   DEPLOY         job_id, attempt, job_name, plugin_sha256, graph_json, [arg...], vertex,
 *                  subtask, [parallelism per vertex...], [[data address per subtask...]...]
 *   CANCEL         job_id, attempt
 *   TASK_STATE     task
 *   BLOB_REQUEST   blob_sha256
 *   BLOB           blob_sha256, blob (bin or nil), error (str or nil)
 *   TRIGGER_CHECKPOINT  job_id, attempt, checkpoint_id, checkpoint_timestamp, vertex, subtask
 *   ACK_CHECKPOINT      job_id, attempt, checkpoint_id, vertex, subtask, final, op_state (bin or
 *                       nil), keyed_handle, state_size, uploaded_size, alignment_ns, sync_ns,
 *                       async_ns
 *   DECLINE_CHECKPOINT  job_id, attempt, checkpoint_id, vertex, subtask, error
 *   NOTIFY_CHECKPOINT   job_id, attempt, checkpoint_id, final
 * DEPLOY carries five more fields after the placement: checkpoint_mode, checkpoint_dir,
 * restore_checkpoint_id, restore_op_state (bin or nil), restore_keyed_handle.
 * where task = [job_id, attempt, vertex, subtask, state, message|nil,
 *               [records_in, records_out, buffers_in_remote, bytes_in_remote,
 *                buffers_out_remote, bytes_out_remote, buffers_out_local, backpressured_ns]].
 * char * fields are str or nil (NULL). Encoding uses msgpack-c's packer; decoding uses a small
 * bounds-checked reader of its own instead of msgpack_unpack, because msgpack-c allocates a
 * declared array length up front (a 5-byte garbage header could ask for 100 GB).
 * Invariants: decode never reads past len, rejects trailing bytes, and on error leaves the
 * message cleared. Threading: stateless; any thread. */
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

static const char *msg_type_name(int t) {
    switch (t) {
    case WEIR_MSG_REGISTER:
        return "REGISTER";
    case WEIR_MSG_REGISTERED:
        return "REGISTERED";
    case WEIR_MSG_HEARTBEAT:
        return "HEARTBEAT";
    case WEIR_MSG_HEARTBEAT_ACK:
        return "HEARTBEAT_ACK";
    case WEIR_MSG_UNKNOWN:
        return "UNKNOWN";
    case WEIR_MSG_DEPLOY:
        return "DEPLOY";
    case WEIR_MSG_CANCEL:
        return "CANCEL";
    case WEIR_MSG_TASK_STATE:
        return "TASK_STATE";
    case WEIR_MSG_BLOB_REQUEST:
        return "BLOB_REQUEST";
    case WEIR_MSG_BLOB:
        return "BLOB";
    case WEIR_MSG_TRIGGER_CHECKPOINT:
        return "TRIGGER_CHECKPOINT";
    case WEIR_MSG_ACK_CHECKPOINT:
        return "ACK_CHECKPOINT";
    case WEIR_MSG_DECLINE_CHECKPOINT:
        return "DECLINE_CHECKPOINT";
    case WEIR_MSG_NOTIFY_CHECKPOINT:
        return "NOTIFY_CHECKPOINT";
    }
    return NULL;
}

/* ---- encoding ------------------------------------------------------------------------------ */

/* Number of fields after [type, version], per message type. */
static const uint32_t N_FIELDS[] = {
    [WEIR_MSG_REGISTER] = 5,
    [WEIR_MSG_REGISTERED] = 1,
    [WEIR_MSG_HEARTBEAT] = 2,
    [WEIR_MSG_HEARTBEAT_ACK] = 0,
    [WEIR_MSG_UNKNOWN] = 0,
    [WEIR_MSG_DEPLOY] = 15,
    [WEIR_MSG_CANCEL] = 2,
    [WEIR_MSG_TASK_STATE] = 1,
    [WEIR_MSG_BLOB_REQUEST] = 1,
    [WEIR_MSG_BLOB] = 3,
    [WEIR_MSG_TRIGGER_CHECKPOINT] = 6,
    [WEIR_MSG_ACK_CHECKPOINT] = 13,
    [WEIR_MSG_DECLINE_CHECKPOINT] = 6,
    [WEIR_MSG_NOTIFY_CHECKPOINT] = 4,
};

#define PK(expr)                                                                                   \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            goto fail;                                                                             \
    } while (0)

static int pack_str(msgpack_packer *pk, const char *s) {
    if (!s)
        return msgpack_pack_nil(pk);
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) != 0)
        return -1;
    return msgpack_pack_str_body(pk, s, n);
}

static int pack_bin(msgpack_packer *pk, const uint8_t *data, size_t len) {
    if (!data)
        return msgpack_pack_nil(pk);
    if (msgpack_pack_bin(pk, len) != 0)
        return -1;
    return msgpack_pack_bin_body(pk, data, len);
}

static int pack_task(msgpack_packer *pk, const weir_msg_task_state_t *t) {
    const weir_task_metrics_t *m = &t->metrics;
    PK(msgpack_pack_array(pk, 7));
    PK(pack_str(pk, t->job_id));
    PK(msgpack_pack_uint32(pk, t->attempt));
    PK(msgpack_pack_uint32(pk, t->vertex));
    PK(msgpack_pack_uint32(pk, t->subtask));
    PK(msgpack_pack_uint32(pk, (uint32_t)t->state));
    PK(pack_str(pk, t->message));
    PK(msgpack_pack_array(pk, 8));
    PK(msgpack_pack_uint64(pk, m->records_in));
    PK(msgpack_pack_uint64(pk, m->records_out));
    PK(msgpack_pack_uint64(pk, m->buffers_in_remote));
    PK(msgpack_pack_uint64(pk, m->bytes_in_remote));
    PK(msgpack_pack_uint64(pk, m->buffers_out_remote));
    PK(msgpack_pack_uint64(pk, m->bytes_out_remote));
    PK(msgpack_pack_uint64(pk, m->buffers_out_local));
    PK(msgpack_pack_uint64(pk, m->backpressured_ns));
    return 0;
fail:
    return -1;
}

int weir_msg_encode(const weir_msg_t *msg, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!msg_type_name(msg->type))
        return WEIR_EINVAL;
    if (msg->type == WEIR_MSG_TASK_STATE && (msg->n_tasks != 1 || !msg->tasks))
        return WEIR_EINVAL;
    if (msg->type == WEIR_MSG_HEARTBEAT && msg->n_tasks > 0 && !msg->tasks)
        return WEIR_EINVAL;
    if (msg->type == WEIR_MSG_DEPLOY && msg->n_vertices > 0 &&
        (!msg->vertex_parallelism || !msg->placement))
        return WEIR_EINVAL;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    PK(msgpack_pack_array(&pk, 2 + N_FIELDS[msg->type]));
    PK(msgpack_pack_uint32(&pk, (uint32_t)msg->type));
    PK(msgpack_pack_uint32(&pk, WEIR_PROTO_VERSION));
    switch (msg->type) {
    case WEIR_MSG_REGISTER:
        PK(pack_str(&pk, msg->tm_id));
        PK(pack_str(&pk, msg->data_address));
        PK(pack_str(&pk, msg->host));
        PK(msgpack_pack_uint32(&pk, msg->slots));
        PK(msgpack_pack_int64(&pk, msg->pid));
        break;
    case WEIR_MSG_REGISTERED:
        PK(msgpack_pack_int64(&pk, msg->heartbeat_interval_ms));
        break;
    case WEIR_MSG_HEARTBEAT:
        PK(pack_str(&pk, msg->tm_id));
        PK(msgpack_pack_array(&pk, msg->n_tasks));
        for (uint32_t i = 0; i < msg->n_tasks; i++)
            PK(pack_task(&pk, &msg->tasks[i]));
        break;
    case WEIR_MSG_HEARTBEAT_ACK:
    case WEIR_MSG_UNKNOWN:
        break;
    case WEIR_MSG_DEPLOY:
        PK(pack_str(&pk, msg->job_id));
        PK(msgpack_pack_uint32(&pk, msg->attempt));
        PK(pack_str(&pk, msg->job_name));
        PK(pack_str(&pk, msg->plugin_sha256));
        PK(pack_str(&pk, msg->graph_json));
        PK(msgpack_pack_array(&pk, msg->n_args));
        for (uint32_t i = 0; i < msg->n_args; i++)
            PK(pack_str(&pk, msg->args[i]));
        PK(msgpack_pack_uint32(&pk, msg->vertex));
        PK(msgpack_pack_uint32(&pk, msg->subtask));
        PK(msgpack_pack_array(&pk, msg->n_vertices));
        for (uint32_t v = 0; v < msg->n_vertices; v++)
            PK(msgpack_pack_uint32(&pk, msg->vertex_parallelism[v]));
        PK(msgpack_pack_array(&pk, msg->n_vertices));
        for (uint32_t v = 0; v < msg->n_vertices; v++) {
            PK(msgpack_pack_array(&pk, msg->vertex_parallelism[v]));
            for (uint32_t s = 0; s < msg->vertex_parallelism[v]; s++)
                PK(pack_str(&pk, msg->placement[v] ? msg->placement[v][s] : NULL));
        }
        PK(msgpack_pack_uint32(&pk, (uint32_t)msg->checkpoint_mode));
        PK(pack_str(&pk, msg->checkpoint_dir));
        PK(msgpack_pack_uint64(&pk, msg->restore_checkpoint_id));
        PK(pack_bin(&pk, msg->restore_op_state, msg->restore_op_state_len));
        PK(pack_str(&pk, msg->restore_keyed_handle));
        break;
    case WEIR_MSG_CANCEL:
        PK(pack_str(&pk, msg->job_id));
        PK(msgpack_pack_uint32(&pk, msg->attempt));
        break;
    case WEIR_MSG_TASK_STATE:
        PK(pack_task(&pk, &msg->tasks[0]));
        break;
    case WEIR_MSG_BLOB_REQUEST:
        PK(pack_str(&pk, msg->blob_sha256));
        break;
    case WEIR_MSG_BLOB:
        PK(pack_str(&pk, msg->blob_sha256));
        if (msg->blob) {
            PK(msgpack_pack_bin(&pk, msg->blob_len));
            PK(msgpack_pack_bin_body(&pk, msg->blob, msg->blob_len));
        } else {
            PK(msgpack_pack_nil(&pk));
        }
        PK(pack_str(&pk, msg->error));
        break;
    case WEIR_MSG_TRIGGER_CHECKPOINT:
        PK(pack_str(&pk, msg->job_id));
        PK(msgpack_pack_uint32(&pk, msg->attempt));
        PK(msgpack_pack_uint64(&pk, msg->checkpoint_id));
        PK(msgpack_pack_int64(&pk, msg->checkpoint_timestamp));
        PK(msgpack_pack_uint32(&pk, msg->vertex));
        PK(msgpack_pack_uint32(&pk, msg->subtask));
        break;
    case WEIR_MSG_ACK_CHECKPOINT:
        PK(pack_str(&pk, msg->job_id));
        PK(msgpack_pack_uint32(&pk, msg->attempt));
        PK(msgpack_pack_uint64(&pk, msg->checkpoint_id));
        PK(msgpack_pack_uint32(&pk, msg->vertex));
        PK(msgpack_pack_uint32(&pk, msg->subtask));
        PK(msg->final ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
        PK(pack_bin(&pk, msg->op_state, msg->op_state_len));
        PK(pack_str(&pk, msg->keyed_handle));
        PK(msgpack_pack_uint64(&pk, msg->state_size));
        PK(msgpack_pack_uint64(&pk, msg->uploaded_size));
        PK(msgpack_pack_uint64(&pk, msg->alignment_ns));
        PK(msgpack_pack_uint64(&pk, msg->sync_ns));
        PK(msgpack_pack_uint64(&pk, msg->async_ns));
        break;
    case WEIR_MSG_DECLINE_CHECKPOINT:
        PK(pack_str(&pk, msg->job_id));
        PK(msgpack_pack_uint32(&pk, msg->attempt));
        PK(msgpack_pack_uint64(&pk, msg->checkpoint_id));
        PK(msgpack_pack_uint32(&pk, msg->vertex));
        PK(msgpack_pack_uint32(&pk, msg->subtask));
        PK(pack_str(&pk, msg->error));
        break;
    case WEIR_MSG_NOTIFY_CHECKPOINT:
        PK(pack_str(&pk, msg->job_id));
        PK(msgpack_pack_uint32(&pk, msg->attempt));
        PK(msgpack_pack_uint64(&pk, msg->checkpoint_id));
        PK(msg->final ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
        break;
    }
    /* An empty sbuffer has data == NULL; every message has at least 3 bytes. */
    *out = (uint8_t *)sb.data;
    *out_len = sb.size;
    return 0;
fail:
    msgpack_sbuffer_destroy(&sb);
    return WEIR_ENOMEM;
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

static int rd_u32(rd_t *r, const char *field, uint32_t *out) {
    uint64_t v;
    if (rd_u64(r, field, UINT32_MAX, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int rd_i64(rd_t *r, const char *field, int64_t *out) {
    uint64_t mag;
    bool neg;
    if (rd_any_int(r, field, &mag, &neg) < 0)
        return -1;
    if (!neg && mag > (uint64_t)INT64_MAX)
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

/* Reads an array header; the count is checked against the bytes left (>= 1 byte each). */
static int rd_bool(rd_t *r, const char *field, bool *out) {
    if (rd_need(r, 1) && (*r->p == 0xc2 || *r->p == 0xc3)) {
        *out = *r->p == 0xc3;
        r->p++;
        return 0;
    }
    return rd_fail(r, field, "expected a boolean");
}

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

/* A nullable heap string (str or nil). */
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

static int rd_task(rd_t *r, weir_msg_task_state_t *t) {
    uint32_t state;
    weir_task_metrics_t *m = &t->metrics;
    if (rd_expect_array(r, "task", 7) < 0 || rd_fixstr(r, "task.job_id", t->job_id, 33) < 0 ||
        rd_u32(r, "task.attempt", &t->attempt) < 0 || rd_u32(r, "task.vertex", &t->vertex) < 0 ||
        rd_u32(r, "task.subtask", &t->subtask) < 0 || rd_u32(r, "task.state", &state) < 0)
        return -1;
    if (state > WEIR_TASK_FAILED)
        return rd_fail(r, "task.state", "unknown task state");
    t->state = (weir_task_state_t)state;
    if (rd_str(r, "task.message", &t->message) < 0 || rd_expect_array(r, "task.metrics", 8) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->records_in) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->records_out) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->buffers_in_remote) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->bytes_in_remote) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->buffers_out_remote) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->bytes_out_remote) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->buffers_out_local) < 0 ||
        rd_u64(r, "task.metrics", UINT64_MAX, &m->backpressured_ns) < 0)
        return -1;
    return 0;
}

static int rd_tasks(rd_t *r, weir_msg_t *msg, uint32_t n) {
    msg->tasks = calloc(n ? n : 1, sizeof *msg->tasks);
    if (!msg->tasks)
        return rd_fail(r, "tasks", "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        msg->n_tasks = i + 1; /* so that clear frees what was decoded */
        if (rd_task(r, &msg->tasks[i]) < 0)
            return -1;
    }
    msg->n_tasks = n;
    return 0;
}

static int rd_deploy(rd_t *r, weir_msg_t *m) {
    uint32_t n;
    if (rd_fixstr(r, "job_id", m->job_id, sizeof m->job_id) < 0 ||
        rd_u32(r, "attempt", &m->attempt) < 0 || rd_str(r, "job_name", &m->job_name) < 0 ||
        rd_fixstr(r, "plugin_sha256", m->plugin_sha256, sizeof m->plugin_sha256) < 0 ||
        rd_str(r, "graph_json", &m->graph_json) < 0 || rd_array(r, "args", &n) < 0)
        return -1;
    m->args = calloc(n ? n : 1, sizeof *m->args);
    if (!m->args)
        return rd_fail(r, "args", "out of memory");
    m->n_args = n;
    for (uint32_t i = 0; i < n; i++)
        if (rd_str(r, "args", &m->args[i]) < 0)
            return -1;
    if (rd_u32(r, "vertex", &m->vertex) < 0 || rd_u32(r, "subtask", &m->subtask) < 0 ||
        rd_array(r, "vertex_parallelism", &n) < 0)
        return -1;
    m->vertex_parallelism = calloc(n ? n : 1, sizeof *m->vertex_parallelism);
    m->placement = calloc(n ? n : 1, sizeof *m->placement);
    if (!m->vertex_parallelism || !m->placement)
        return rd_fail(r, "vertex_parallelism", "out of memory");
    m->n_vertices = n;
    for (uint32_t v = 0; v < n; v++)
        if (rd_u32(r, "vertex_parallelism", &m->vertex_parallelism[v]) < 0)
            return -1;
    if (rd_expect_array(r, "placement", n) < 0)
        return -1;
    for (uint32_t v = 0; v < n; v++) {
        uint32_t p = m->vertex_parallelism[v];
        if (rd_expect_array(r, "placement", p) < 0)
            return -1;
        m->placement[v] = calloc(p ? p : 1, sizeof *m->placement[v]);
        if (!m->placement[v])
            return rd_fail(r, "placement", "out of memory");
        for (uint32_t s = 0; s < p; s++)
            if (rd_str(r, "placement", &m->placement[v][s]) < 0)
                return -1;
    }
    if (m->vertex >= m->n_vertices || m->subtask >= m->vertex_parallelism[m->vertex])
        return rd_fail(r, "vertex/subtask", "outside the placement");
    uint32_t mode;
    if (rd_u32(r, "checkpoint_mode", &mode) < 0)
        return -1;
    if (mode > WEIR_CHECKPOINT_AT_LEAST_ONCE)
        return rd_fail(r, "checkpoint_mode", "unknown mode");
    m->checkpoint_mode = (weir_checkpoint_mode_t)mode;
    if (rd_str(r, "checkpoint_dir", &m->checkpoint_dir) < 0 ||
        rd_u64(r, "restore_checkpoint_id", UINT64_MAX, &m->restore_checkpoint_id) < 0 ||
        rd_opt_bin(r, "restore_op_state", &m->restore_op_state, &m->restore_op_state_len) < 0 ||
        rd_str(r, "restore_keyed_handle", &m->restore_keyed_handle) < 0)
        return -1;
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
    if (rd_u32(&r, "type", &type) < 0)
        goto fail;
    r.type = msg_type_name((int)type);
    if (!r.type) {
        weir_fmt(errstr, errlen, "unknown control message type %u", type);
        goto fail;
    }
    if (rd_u32(&r, "version", &version) < 0)
        goto fail;
    if (version != WEIR_PROTO_VERSION) {
        weir_fmt(errstr, errlen,
                 "%s message of protocol version %u, expected %u: upgrade both sides", r.type,
                 version, WEIR_PROTO_VERSION);
        goto fail;
    }
    if (n != 2 + N_FIELDS[type]) {
        char what[64];
        weir_fmt(what, sizeof what, "expected %u fields, got %u", N_FIELDS[type], n - 2);
        rd_fail(&r, "message", what);
        goto fail;
    }
    msg->type = (weir_msg_type_t)type;
    switch (msg->type) {
    case WEIR_MSG_REGISTER:
        if (rd_str(&r, "tm_id", &msg->tm_id) < 0 ||
            rd_str(&r, "data_address", &msg->data_address) < 0 ||
            rd_str(&r, "host", &msg->host) < 0 || rd_u32(&r, "slots", &msg->slots) < 0 ||
            rd_i64(&r, "pid", &msg->pid) < 0)
            goto fail;
        break;
    case WEIR_MSG_REGISTERED:
        if (rd_i64(&r, "heartbeat_interval_ms", &msg->heartbeat_interval_ms) < 0)
            goto fail;
        break;
    case WEIR_MSG_HEARTBEAT:
        if (rd_str(&r, "tm_id", &msg->tm_id) < 0 || rd_array(&r, "tasks", &n) < 0 ||
            rd_tasks(&r, msg, n) < 0)
            goto fail;
        break;
    case WEIR_MSG_HEARTBEAT_ACK:
    case WEIR_MSG_UNKNOWN:
        break;
    case WEIR_MSG_DEPLOY:
        if (rd_deploy(&r, msg) < 0)
            goto fail;
        break;
    case WEIR_MSG_CANCEL:
        if (rd_fixstr(&r, "job_id", msg->job_id, sizeof msg->job_id) < 0 ||
            rd_u32(&r, "attempt", &msg->attempt) < 0)
            goto fail;
        break;
    case WEIR_MSG_TASK_STATE:
        if (rd_tasks(&r, msg, 1) < 0)
            goto fail;
        break;
    case WEIR_MSG_BLOB_REQUEST:
        if (rd_fixstr(&r, "blob_sha256", msg->blob_sha256, sizeof msg->blob_sha256) < 0)
            goto fail;
        break;
    case WEIR_MSG_BLOB: {
        if (rd_fixstr(&r, "blob_sha256", msg->blob_sha256, sizeof msg->blob_sha256) < 0)
            goto fail;
        if (!rd_nil(&r)) {
            const uint8_t *d;
            size_t bl;
            if (rd_bytes(&r, "blob", true, &d, &bl) < 0)
                goto fail;
            msg->blob = malloc(bl ? bl : 1);
            if (!msg->blob) {
                rd_fail(&r, "blob", "out of memory");
                goto fail;
            }
            memcpy(msg->blob, d, bl);
            msg->blob_len = bl;
        }
        if (rd_str(&r, "error", &msg->error) < 0)
            goto fail;
        break;
    }
    case WEIR_MSG_TRIGGER_CHECKPOINT:
        if (rd_fixstr(&r, "job_id", msg->job_id, sizeof msg->job_id) < 0 ||
            rd_u32(&r, "attempt", &msg->attempt) < 0 ||
            rd_u64(&r, "checkpoint_id", UINT64_MAX, &msg->checkpoint_id) < 0 ||
            rd_i64(&r, "checkpoint_timestamp", &msg->checkpoint_timestamp) < 0 ||
            rd_u32(&r, "vertex", &msg->vertex) < 0 || rd_u32(&r, "subtask", &msg->subtask) < 0)
            goto fail;
        break;
    case WEIR_MSG_ACK_CHECKPOINT:
        if (rd_fixstr(&r, "job_id", msg->job_id, sizeof msg->job_id) < 0 ||
            rd_u32(&r, "attempt", &msg->attempt) < 0 ||
            rd_u64(&r, "checkpoint_id", UINT64_MAX, &msg->checkpoint_id) < 0 ||
            rd_u32(&r, "vertex", &msg->vertex) < 0 || rd_u32(&r, "subtask", &msg->subtask) < 0 ||
            rd_bool(&r, "final", &msg->final) < 0 ||
            rd_opt_bin(&r, "op_state", &msg->op_state, &msg->op_state_len) < 0 ||
            rd_str(&r, "keyed_handle", &msg->keyed_handle) < 0 ||
            rd_u64(&r, "state_size", UINT64_MAX, &msg->state_size) < 0 ||
            rd_u64(&r, "uploaded_size", UINT64_MAX, &msg->uploaded_size) < 0 ||
            rd_u64(&r, "alignment_ns", UINT64_MAX, &msg->alignment_ns) < 0 ||
            rd_u64(&r, "sync_ns", UINT64_MAX, &msg->sync_ns) < 0 ||
            rd_u64(&r, "async_ns", UINT64_MAX, &msg->async_ns) < 0)
            goto fail;
        break;
    case WEIR_MSG_DECLINE_CHECKPOINT:
        if (rd_fixstr(&r, "job_id", msg->job_id, sizeof msg->job_id) < 0 ||
            rd_u32(&r, "attempt", &msg->attempt) < 0 ||
            rd_u64(&r, "checkpoint_id", UINT64_MAX, &msg->checkpoint_id) < 0 ||
            rd_u32(&r, "vertex", &msg->vertex) < 0 || rd_u32(&r, "subtask", &msg->subtask) < 0 ||
            rd_str(&r, "error", &msg->error) < 0)
            goto fail;
        break;
    case WEIR_MSG_NOTIFY_CHECKPOINT:
        if (rd_fixstr(&r, "job_id", msg->job_id, sizeof msg->job_id) < 0 ||
            rd_u32(&r, "attempt", &msg->attempt) < 0 ||
            rd_u64(&r, "checkpoint_id", UINT64_MAX, &msg->checkpoint_id) < 0 ||
            rd_bool(&r, "final", &msg->final) < 0)
            goto fail;
        break;
    }
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
    free(msg->error);
    free(msg->checkpoint_dir);
    free(msg->restore_op_state);
    free(msg->restore_keyed_handle);
    free(msg->op_state);
    free(msg->keyed_handle);
    memset(msg, 0, sizeof *msg);
}
