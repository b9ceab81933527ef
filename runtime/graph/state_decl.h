/* The keyed-state declarations of a graph node (weir_value_state, ... or the "states" of the graph
 * JSON): the one part of the graph model the state backend (state/) needs, kept apart from
 * graph.h so that state/ sees neither the rest of the model nor jansson. Plain data. */
#ifndef WEIR_RUNTIME_STATE_DECL_H
#define WEIR_RUNTIME_STATE_DECL_H

#include "weir/weir.h"

typedef enum weir_state_kind {
    WEIR_STATE_VALUE = 0,
    WEIR_STATE_LIST,
    WEIR_STATE_MAP,
    WEIR_STATE_REDUCING,
} weir_state_kind_t;

/** A declared keyed state of a node. */
typedef struct weir_state_decl {
    char *name;
    weir_state_kind_t kind;
    weir_reduce_fn reduce; /* REDUCING only; NULL when parsed from JSON */
    void *reduce_udata;
    int64_t ttl_ms;               /* time to live (processing time); 0 = none */
    weir_ttl_update_t ttl_update; /* when the time to live restarts */
} weir_state_decl_t;

#endif
