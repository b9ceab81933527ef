/* Built-in operators: map, flat_map, filter, keyed process, rolling reduce and the custom sink.
 * Connectors (sources, file/print/blackhole sinks) live in connectors/.
 *
 * Each operator calls the user function stored in its graph node (node->fn, node->udata); the
 * runtime (weir__task_deliver, task_int.h) has set the current key and the state backend's key
 * before process() for keyed operators. Reduce keeps its accumulator in reducing state 0 of its
 * node and emits the new accumulator with the input's key and timestamp.
 *
 * Threading: everything runs on the subtask thread; no allocation per record. */
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runtime/task/operator.h"
#include "runtime/task/task_int.h"

static void map_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    ((weir_map_fn)op->node->fn)(ctx, rec, op->node->udata);
}

static void flat_map_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    ((weir_flat_map_fn)op->node->fn)(ctx, rec, op->node->udata);
}

static void filter_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    if (((weir_filter_fn)op->node->fn)(ctx, rec, op->node->udata))
        weir_emit(ctx, rec);
}

static void process_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    ((weir_process_fn)op->node->fn)(ctx, rec, op->node->udata);
}

/* A two-input process operator (weir_co_process): fn for input 0, fn2 for input 1; the loop
 * set ctx->in_idx from the input channel of the buffer being read. */
static void co_process_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    weir_process_fn fn = (weir_process_fn)(ctx->in_idx ? op->node->fn2 : op->node->fn);
    fn(ctx, rec, op->node->udata);
}

static void sink_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    ((weir_sink_fn)op->node->fn)(ctx, rec, op->node->udata);
}

static int reduce_open(weir_operator_t *op, weir_ctx_t *ctx) {
    if (!ctx->sb || ctx->n_states < 1) {
        weir_fail(ctx, "reduce needs its reducing state (declared %u states)", op->node->n_states);
        return WEIR_EINVAL;
    }
    return 0;
}

static void reduce_process(weir_operator_t *op, weir_ctx_t *ctx, const weir_record_t *rec) {
    (void)op;
    int rc = weir_reducing_add(ctx, 0, rec->value, rec->value_len);
    if (rc < 0) {
        weir_fail(ctx, "reduce: cannot update the accumulator: %s", weir_strerror(rc));
        return;
    }
    const void *val;
    uint32_t len;
    rc = weir_reducing_get(ctx, 0, &val, &len);
    if (rc != 0) {
        weir_fail(ctx, "reduce: cannot read the accumulator: %s",
                  rc > 0 ? "missing after add" : weir_strerror(rc));
        return;
    }
    /* copy: the state's pointer is valid only until the next state call */
    ctx->sbuf.size = 0;
    if (msgpack_sbuffer_write(&ctx->sbuf, val, len) != 0) {
        weir_fail(ctx, "reduce: out of memory");
        return;
    }
    weir_record_t out = {rec->timestamp, rec->key, rec->key_len, ctx->sbuf.data, len};
    weir_emit(ctx, &out);
}

static const weir_operator_vt_t map_vt = {.process = map_process};
static const weir_operator_vt_t flat_map_vt = {.process = flat_map_process};
static const weir_operator_vt_t filter_vt = {.process = filter_process};
static const weir_operator_vt_t process_vt = {.process = process_process};
static const weir_operator_vt_t co_process_vt = {.process = co_process_process};
static const weir_operator_vt_t reduce_vt = {.open = reduce_open, .process = reduce_process};
static const weir_operator_vt_t sink_vt = {.process = sink_process};

int weir_operator_create_builtin(weir_operator_t *op, char *errstr, size_t errlen) {
    const weir_operator_vt_t *vt;
    switch (op->node->kind) {
    case WEIR_OP_MAP:
        vt = &map_vt;
        break;
    case WEIR_OP_FLAT_MAP:
        vt = &flat_map_vt;
        break;
    case WEIR_OP_FILTER:
        vt = &filter_vt;
        break;
    case WEIR_OP_PROCESS:
        vt = op->node->n_inputs == 2 ? &co_process_vt : &process_vt;
        break;
    case WEIR_OP_REDUCE:
        vt = &reduce_vt;
        break;
    case WEIR_OP_SINK_CUSTOM:
        vt = &sink_vt;
        break;
    default:
        weir_fmt(errstr, errlen, "%s is not a built-in transformation",
                 weir_op_kind_name(op->node->kind));
        return WEIR_EINVAL;
    }
    if (!op->node->fn || (op->node->n_inputs == 2 && !op->node->fn2)) {
        weir_fmt(errstr, errlen,
                 "operator %s has no user function: the graph must come from the plugin's "
                 "define()",
                 op->node->name);
        return WEIR_EINVAL;
    }
    op->vt = vt;
    op->impl = NULL;
    return 0;
}
