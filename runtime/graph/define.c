/* The define-time half of the public API (include/weir/weir.h): job settings, weir_job_alloc,
 * sources, transformations, repartitioning, sinks, operator settings and keyed-state
 * declarations. Each call adds to the graph model through graph_int.h.
 *
 * Invariants: API misuse inside define() never crashes: it records the first error in job->error,
 * sets job->failed, and returns a usable value (a node is still created where possible; NULL where
 * there is nothing to attach to). Every function accepts a NULL stream. A stream handle names a
 * node by id (and the partitioning its consumers get), so handles stay valid as nodes are added.
 *
 * Threading: define() runs on the thread that calls the plugin (CLI or task manager); a graph is
 * owned by that thread while it is built. No locks, no global state.
 */
#include "runtime/graph/graph_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/graph/keygroup.h"

/* ------------------------------------------------------------------------------------------ */
/* Job-level public API                                                                       */
/* ------------------------------------------------------------------------------------------ */

void weir_job_error(weir_job_t *job, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    weir__graph_verror(job, fmt, ap);
    va_end(ap);
}

void weir_job_set_name(weir_job_t *job, const char *name) {
    if (!job)
        return;
    if (!name || !*name) {
        weir_job_error(job, "weir_job_set_name: the name is empty: pass a non-empty string");
        return;
    }
    job->name = weir__graph_strdup(job, name);
    weir__graph_check_text(job, "the job name", name);
}

uint32_t weir_job_parallelism(const weir_job_t *job) {
    return job ? job->default_parallelism : 1;
}

void weir_job_set_max_parallelism(weir_job_t *job, uint32_t max_parallelism) {
    if (!job)
        return;
    if (max_parallelism == 0 || max_parallelism > WEIR_MAX_MAX_PARALLELISM) {
        weir_job_error(job, "weir_job_set_max_parallelism(%u): must be between 1 and %u",
                       max_parallelism, WEIR_MAX_MAX_PARALLELISM);
        return;
    }
    job->max_parallelism = max_parallelism;
}

void *weir_job_alloc(weir_job_t *job, size_t size) {
    if (!job) {
        fprintf(stderr, "weir: weir_job_alloc called with a NULL job\n");
        abort();
    }
    return weir__graph_alloc(job, size);
}

char *weir_job_strdup(weir_job_t *job, const char *s) {
    if (!job || !s)
        return NULL;
    return weir__graph_strdup(job, s);
}

/* ------------------------------------------------------------------------------------------ */
/* Node construction                                                                          */
/* ------------------------------------------------------------------------------------------ */

static weir_stream_t *new_stream(weir_job_t *job, uint32_t node) {
    weir_stream_t *s = weir__graph_alloc(job, sizeof(*s));
    s->job = job;
    s->node = node;
    s->part = WEIR_PART_FORWARD;
    return s;
}

/* A node consuming @p in. in must be non-NULL. */
static weir_stream_t *add_consumer(weir_stream_t *in, weir_op_kind_t kind, const char *name,
                                   void *fn, void *udata) {
    weir_job_t *job = in->job;
    weir_node_t *n = weir__graph_add_node(job, kind, name);
    n->input = (int32_t)in->node;
    n->input_part = in->part;
    n->input_tag = in->tag; /* sideout.c: 0 = the main output */
    n->key_fn = in->key_fn;
    n->key_udata = in->key_udata;
    n->has_key_fn = in->part == WEIR_PART_HASH && in->key_fn != NULL;
    n->keyed = in->keyed;
    n->fn = fn;
    n->udata = udata;
    n->n_inputs = 1;
    return new_stream(job, n->id);
}

static bool check_rate(weir_job_t *job, const char *what, const char *name, double rate) {
    if (!isfinite(rate) || rate < 0) {
        weir_job_error(job, "%s '%s': rate %g must be >= 0 (0 = unlimited)", what, name ? name : "",
                       rate);
        return false;
    }
    return true;
}

weir_stream_t *weir_source_datagen(weir_job_t *job, const char *name,
                                   const weir_datagen_opts_t *opts) {
    if (!job)
        return NULL;
    weir_node_t *n = weir__graph_add_node(job, WEIR_OP_SOURCE_DATAGEN, name);
    if (opts)
        n->datagen = *opts;
    if (n->datagen.kind != WEIR_DATAGEN_SEQUENCE && n->datagen.kind != WEIR_DATAGEN_RANDOM) {
        weir_job_error(job,
                       "weir_source_datagen '%s': unknown kind %d: use WEIR_DATAGEN_SEQUENCE "
                       "or WEIR_DATAGEN_RANDOM",
                       n->name, (int)n->datagen.kind);
        n->datagen.kind = WEIR_DATAGEN_SEQUENCE;
    }
    if (!check_rate(job, "weir_source_datagen", n->name, n->datagen.rate))
        n->datagen.rate = 0;
    n->rate = n->datagen.rate;
    n->count = n->datagen.count;
    return new_stream(job, n->id);
}

weir_stream_t *weir_source_file(weir_job_t *job, const char *name, const char *path, double rate) {
    if (!job)
        return NULL;
    weir_node_t *n = weir__graph_add_node(job, WEIR_OP_SOURCE_FILE, name);
    if (!path || !*path)
        weir_job_error(job, "weir_source_file '%s': no path: pass a file or directory", n->name);
    n->path = weir__graph_strdup(job, path ? path : "");
    weir__graph_check_text(job, "weir_source_file path", n->path);
    n->rate = check_rate(job, "weir_source_file", n->name, rate) ? rate : 0;
    return new_stream(job, n->id);
}

/* Largest number of options of one Kafka node, and of one option's key or value in bytes. */
#define MAX_OPTIONS 256u
#define MAX_OPTION_LEN 4096u

/* Copies the NULL-terminated (key, value) list @p options of @p api into node @p n. */
static void set_options(weir_job_t *job, weir_node_t *n, const char *api,
                        const char *const *options) {
    uint32_t count = 0;
    if (options)
        while (options[2 * count] && count < MAX_OPTIONS + 1) {
            if (!options[2 * count + 1]) {
                weir_job_error(job,
                               "%s '%s': option '%s' has no value: options are key, value "
                               "pairs ending with NULL",
                               api, n->name, options[2 * count]);
                return;
            }
            count++;
        }
    if (count > MAX_OPTIONS) {
        weir_job_error(job, "%s '%s': more than %u options", api, n->name, MAX_OPTIONS);
        return;
    }
    n->options = weir_job_alloc(job, (2 * (size_t)count + 1) * sizeof *n->options);
    for (uint32_t i = 0; i < 2 * count; i++) {
        if (strlen(options[i]) > MAX_OPTION_LEN || (i % 2 == 0 && !*options[i])) {
            weir_job_error(job, "%s '%s': option %s %u is empty or longer than %u bytes", api,
                           n->name, i % 2 ? "value" : "key", i / 2, MAX_OPTION_LEN);
            return;
        }
        n->options[i] = weir__graph_strdup(job, options[i]);
        weir__graph_check_text(job, api, n->options[i]);
    }
    n->n_options = count;
}

weir_stream_t *weir_source_kafka(weir_job_t *job, const char *name, const char *const *options) {
    if (!job)
        return NULL;
    weir_node_t *n = weir__graph_add_node(job, WEIR_OP_SOURCE_KAFKA, name);
    set_options(job, n, "weir_source_kafka", options);
    return new_stream(job, n->id);
}

weir_stream_t *weir_source_generator(weir_job_t *job, const char *name, uint64_t count, double rate,
                                     weir_generator_fn fn, void *udata) {
    if (!job)
        return NULL;
    weir_node_t *n = weir__graph_add_node(job, WEIR_OP_SOURCE_GENERATOR, name);
    if (!fn)
        weir_job_error(job, "weir_source_generator '%s': no generator function", n->name);
    n->fn = (void *)fn;
    n->udata = udata;
    n->count = count;
    n->rate = check_rate(job, "weir_source_generator", n->name, rate) ? rate : 0;
    return new_stream(job, n->id);
}

static weir_stream_t *transform(weir_stream_t *in, weir_op_kind_t kind, const char *api,
                                const char *name, void *fn, void *udata) {
    if (!in || !in->job)
        return NULL;
    if (!fn)
        weir_job_error(in->job, "%s '%s': no function: pass one", api,
                       name ? name : weir_op_kind_name(kind));
    return add_consumer(in, kind, name, fn, udata);
}

weir_stream_t *weir_map(weir_stream_t *in, const char *name, weir_map_fn fn, void *udata) {
    return transform(in, WEIR_OP_MAP, "weir_map", name, (void *)fn, udata);
}

weir_stream_t *weir_flat_map(weir_stream_t *in, const char *name, weir_flat_map_fn fn,
                             void *udata) {
    return transform(in, WEIR_OP_FLAT_MAP, "weir_flat_map", name, (void *)fn, udata);
}

weir_stream_t *weir_filter(weir_stream_t *in, const char *name, weir_filter_fn fn, void *udata) {
    return transform(in, WEIR_OP_FILTER, "weir_filter", name, (void *)fn, udata);
}

static weir_stream_t *repartition(weir_stream_t *in, weir_part_t part) {
    if (!in || !in->job)
        return NULL;
    weir_stream_t *s = new_stream(in->job, in->node);
    s->part = part;
    s->tag = in->tag; /* a repartitioned side output stays that side output */
    return s;
}

weir_stream_t *weir_key_by(weir_stream_t *in, weir_key_fn fn, void *udata) {
    weir_stream_t *s = repartition(in, WEIR_PART_HASH);
    if (s) {
        s->key_fn = fn;
        s->key_udata = udata;
        s->keyed = true;
    }
    return s;
}

weir_stream_t *weir_rebalance(weir_stream_t *in) {
    return repartition(in, WEIR_PART_REBALANCE);
}

weir_stream_t *weir_broadcast(weir_stream_t *in) {
    return repartition(in, WEIR_PART_BROADCAST);
}

static weir_stream_t *keyed_op(weir_stream_t *keyed, weir_op_kind_t kind, const char *api,
                               const char *name, void *fn, void *udata) {
    if (!keyed || !keyed->job)
        return NULL;
    const char *shown = name && *name ? name : weir_op_kind_name(kind);
    if (!keyed->keyed)
        weir_job_error(keyed->job, "%s '%s': input is not keyed: call weir_key_by() first", api,
                       shown);
    if (!fn)
        weir_job_error(keyed->job, "%s '%s': no function: pass one", api, shown);
    return add_consumer(keyed, kind, name, fn, udata);
}

weir_stream_t *weir_process(weir_stream_t *keyed, const char *name, weir_process_fn fn,
                            void *udata) {
    return keyed_op(keyed, WEIR_OP_PROCESS, "weir_process", name, (void *)fn, udata);
}

weir_stream_t *weir_co_process(weir_stream_t *first, weir_stream_t *second, const char *name,
                               weir_process_fn fn1, weir_process_fn fn2, void *udata) {
    if (!first || !first->job)
        return NULL;
    weir_job_t *job = first->job;
    const char *shown = name && *name ? name : "co_process";
    if (!second || second->job != job) {
        weir_job_error(job, "weir_co_process '%s': %s: pass two streams of this job's define()",
                       shown,
                       !second ? "the second input is NULL" : "the inputs belong to two jobs");
        return NULL;
    }
    if (second->node == first->node && second->tag == first->tag)
        weir_job_error(job,
                       "weir_co_process '%s': the same stream is both inputs: pass two streams "
                       "(key one stream once and use weir_process)",
                       shown);
    if (!second->keyed)
        weir_job_error(job,
                       "weir_co_process '%s': the second input is not keyed: call "
                       "weir_key_by() first",
                       shown);
    if (!fn2)
        weir_job_error(job, "weir_co_process '%s': no function for the second input: pass one",
                       shown);
    weir_stream_t *s =
        keyed_op(first, WEIR_OP_PROCESS, "weir_co_process", name, (void *)fn1, udata);
    if (!s)
        return NULL;
    weir_node_t *n = &job->nodes[s->node];
    n->in2 = (weir_node_input_t){.node = (int32_t)second->node,
                                 .part = second->part,
                                 .key_fn = second->key_fn,
                                 .key_udata = second->key_udata,
                                 .has_key_fn = second->part == WEIR_PART_HASH && second->key_fn,
                                 .tag = second->tag};
    n->n_inputs = 2;
    n->fn2 = (void *)fn2;
    return s;
}

weir_stream_t *weir_reduce(weir_stream_t *keyed, const char *name, weir_reduce_fn fn, void *udata) {
    weir_stream_t *s = keyed_op(keyed, WEIR_OP_REDUCE, "weir_reduce", name, (void *)fn, udata);
    if (s)
        weir__graph_add_state(s->job, &s->job->nodes[s->node], "weir_reduce", "reduce",
                              WEIR_STATE_REDUCING, fn, udata);
    return s;
}

static weir_stream_t *sink(weir_stream_t *in, weir_op_kind_t kind, const char *name, void *fn,
                           void *udata) {
    if (!in || !in->job)
        return NULL;
    return add_consumer(in, kind, name, fn, udata);
}

weir_stream_t *weir_sink_file(weir_stream_t *in, const char *name, const char *dir) {
    weir_stream_t *s = sink(in, WEIR_OP_SINK_FILE, name, NULL, NULL);
    if (s) {
        weir_node_t *n = &s->job->nodes[s->node];
        if (!dir || !*dir)
            weir_job_error(s->job, "weir_sink_file '%s': no directory: pass one", n->name);
        n->path = weir__graph_strdup(s->job, dir ? dir : "");
        weir__graph_check_text(s->job, "weir_sink_file directory", n->path);
    }
    return s;
}

weir_stream_t *weir_sink_kafka(weir_stream_t *in, const char *name, const char *const *options) {
    weir_stream_t *s = sink(in, WEIR_OP_SINK_KAFKA, name, NULL, NULL);
    if (s)
        set_options(s->job, &s->job->nodes[s->node], "weir_sink_kafka", options);
    return s;
}

weir_stream_t *weir_sink_print(weir_stream_t *in, const char *name) {
    return sink(in, WEIR_OP_SINK_PRINT, name, NULL, NULL);
}

weir_stream_t *weir_sink_blackhole(weir_stream_t *in, const char *name) {
    return sink(in, WEIR_OP_SINK_BLACKHOLE, name, NULL, NULL);
}

weir_stream_t *weir_sink(weir_stream_t *in, const char *name, weir_sink_fn fn, void *udata) {
    return transform(in, WEIR_OP_SINK_CUSTOM, "weir_sink", name, (void *)fn, udata);
}

/* ------------------------------------------------------------------------------------------ */
/* Operator settings                                                                          */
/* ------------------------------------------------------------------------------------------ */

static weir_node_t *stream_node(const weir_stream_t *s) {
    if (!s || !s->job || s->node >= s->job->n_nodes)
        return NULL;
    return &s->job->nodes[s->node];
}

weir_stream_t *weir_set_uid(weir_stream_t *op, const char *uid) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return op;
    if (!uid || !*uid) {
        weir_job_error(op->job, "weir_set_uid on '%s': the uid is empty: pass a stable id",
                       n->name);
        return op;
    }
    for (uint32_t i = 0; i < op->job->n_nodes; i++) {
        const weir_node_t *o = &op->job->nodes[i];
        if (o != n && o->uid && strcmp(o->uid, uid) == 0) {
            weir_job_error(op->job,
                           "weir_set_uid: uid '%s' is used by '%s' and '%s': uids must be unique",
                           uid, o->name, n->name);
            return op;
        }
    }
    n->uid = weir__graph_strdup(op->job, uid);
    weir__graph_check_text(op->job, "a uid", uid);
    return op;
}

weir_stream_t *weir_set_parallelism(weir_stream_t *op, uint32_t parallelism) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return op;
    if (parallelism == 0) {
        weir_job_error(op->job, "weir_set_parallelism on '%s': parallelism must be >= 1", n->name);
        return op;
    }
    n->parallelism = parallelism;
    return op;
}

weir_stream_t *weir_set_lifecycle(weir_stream_t *op, weir_open_fn open, weir_close_fn close) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return op;
    if (!weir_op_is_user_function(n->kind)) {
        weir_job_error(op->job,
                       "weir_set_lifecycle on '%s': a %s is a built-in connector, not a user "
                       "function: set open/close on a map, flat_map, filter, process, reduce, "
                       "sink or generator source",
                       n->name, weir_op_kind_name(n->kind));
        return op;
    }
    n->open_fn = open;
    n->close_fn = close;
    return op;
}

weir_stream_t *weir_set_watermark_strategy(weir_stream_t *source,
                                           const weir_watermark_strategy_t *strategy) {
    weir_node_t *n = stream_node(source);
    if (!n)
        return source;
    if (!weir_op_is_source(n->kind)) {
        weir_job_error(source->job,
                       "weir_set_watermark_strategy on '%s': not a source: set it on the source "
                       "that reads the records",
                       n->name);
        return source;
    }
    if (!strategy || strategy->max_out_of_orderness_ms < 0 ||
        strategy->max_out_of_orderness_ms > WEIR_WM_MAX_MS || strategy->idle_timeout_ms < 0 ||
        strategy->idle_timeout_ms > WEIR_WM_MAX_MS) {
        weir_job_error(source->job,
                       "weir_set_watermark_strategy on '%s': max_out_of_orderness_ms and "
                       "idle_timeout_ms must be within 0..%" PRId64,
                       n->name, (int64_t)WEIR_WM_MAX_MS);
        return source;
    }
    n->has_wm = true;
    n->wm_bound_ms = strategy->max_out_of_orderness_ms;
    n->wm_idle_ms = strategy->idle_timeout_ms;
    return source;
}

weir_stream_t *weir_set_on_timer(weir_stream_t *process_op, weir_timer_fn on_timer) {
    weir_node_t *n = stream_node(process_op);
    if (!n)
        return process_op;
    if (n->kind != WEIR_OP_PROCESS || !on_timer) {
        weir_job_error(process_op->job,
                       "weir_set_on_timer on '%s': %s: timers belong to a weir_process operator "
                       "with a timer callback",
                       n->name, !on_timer ? "the callback is NULL" : weir_op_kind_name(n->kind));
        return process_op;
    }
    n->on_timer = on_timer;
    if (!n->timers && weir__graph_add_state(process_op->job, n, "weir_set_on_timer",
                                            WEIR_TIMERS_STATE, WEIR_STATE_MAP, NULL, NULL) >= 0)
        n->timers = true;
    return process_op;
}

static weir_state_id declare(weir_stream_t *op, const char *api, const char *name,
                             weir_state_kind_t kind, weir_reduce_fn fn, void *udata) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return -1;
    if (n->kind != WEIR_OP_PROCESS) {
        weir_job_error(op->job,
                       "%s('%s') on '%s': keyed state can only be declared on a weir_process "
                       "operator, this one is a %s",
                       api, name ? name : "", n->name, weir_op_kind_name(n->kind));
        return -1;
    }
    if (kind == WEIR_STATE_REDUCING && !fn) {
        weir_job_error(op->job, "%s('%s') on '%s': no reduce function: pass one", api,
                       name ? name : "", n->name);
        return -1;
    }
    return weir__graph_add_state(op->job, n, api, name, kind, fn, udata);
}

weir_state_id weir_value_state(weir_stream_t *op, const char *name) {
    return declare(op, "weir_value_state", name, WEIR_STATE_VALUE, NULL, NULL);
}

weir_state_id weir_list_state(weir_stream_t *op, const char *name) {
    return declare(op, "weir_list_state", name, WEIR_STATE_LIST, NULL, NULL);
}

weir_state_id weir_map_state(weir_stream_t *op, const char *name) {
    return declare(op, "weir_map_state", name, WEIR_STATE_MAP, NULL, NULL);
}

weir_state_id weir_reducing_state(weir_stream_t *op, const char *name, weir_reduce_fn fn,
                                  void *udata) {
    return declare(op, "weir_reducing_state", name, WEIR_STATE_REDUCING, fn, udata);
}

int weir_state_set_ttl(weir_stream_t *op, weir_state_id st, int64_t ttl_ms,
                       weir_ttl_update_t update) {
    weir_node_t *n = stream_node(op);
    if (!n)
        return -1;
    if (st < 0 || (uint32_t)st >= n->n_states) {
        weir_job_error(op->job,
                       "weir_state_set_ttl on '%s': state %d is not declared on this operator: "
                       "pass the id weir_*_state returned for it",
                       n->name, (int)st);
        return -1;
    }
    weir_state_decl_t *d = &n->states[st];
    if (ttl_ms <= 0 || ttl_ms > WEIR_MAX_STATE_TTL_MS) {
        weir_job_error(op->job,
                       "weir_state_set_ttl('%s') on '%s': time to live %lld ms is out of range: "
                       "pass 1 to %lld ms",
                       d->name, n->name, (long long)ttl_ms, (long long)WEIR_MAX_STATE_TTL_MS);
        return -1;
    }
    if (update != WEIR_TTL_ON_CREATE_AND_WRITE && update != WEIR_TTL_ON_READ_AND_WRITE) {
        weir_job_error(op->job,
                       "weir_state_set_ttl('%s') on '%s': unknown update mode %d: pass "
                       "WEIR_TTL_ON_CREATE_AND_WRITE or WEIR_TTL_ON_READ_AND_WRITE",
                       d->name, n->name, (int)update);
        return -1;
    }
    d->ttl_ms = ttl_ms;
    d->ttl_update = update;
    return 0;
}
