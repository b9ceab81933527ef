/* A subtask's mailbox: a multi-producer, single-consumer queue of typed messages (input
 * buffers, credits, cancel, calls). Producers: the data plane thread, local sender subtasks, the
 * task manager thread. Consumer: the subtask thread. Unbounded as a queue, but its contents are
 * bounded by the credits the subtask granted. Mutex + condition variable. */
#ifndef WEIR_RUNTIME_MAILBOX_H
#define WEIR_RUNTIME_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dataplane/channel.h"

typedef enum weir_mb_type {
    WEIR_MB_BUFFER = 1, /* data plane/local sender -> subtask: buf on input channel `index` */
    WEIR_MB_CREDIT,     /* data plane/local receiver -> subtask: n credits on output `index` */
    WEIR_MB_CANCEL,     /* task manager -> subtask: stop now */
    WEIR_MB_CALL,       /* anyone -> subtask: run fn(arg) on the subtask thread */
    WEIR_MB_TRIGGER,    /* task manager -> source subtask: checkpoint `id` at time `ts` of kind
                           `n` (weir_ck_kind_t), `arg`: its target (malloc'd string owned by
                           the message, NULL for a checkpoint) */
    WEIR_MB_NOTIFY,     /* task manager -> subtask: checkpoint `id` complete (`flag`: final) */
    WEIR_MB_UPLOADED,   /* uploader thread -> subtask: async part of checkpoint `id` done
                           (`arg`: result owned by the task runtime) */
} weir_mb_type_t;

typedef struct weir_mbmsg {
    weir_mb_type_t type;
    uint32_t index;
    uint32_t n;
    weir_netbuf_t *buf;
    void (*fn)(void *arg);
    void *arg;
    uint64_t id; /* TRIGGER / NOTIFY / UPLOADED: checkpoint id */
    int64_t ts;  /* TRIGGER: trigger wall time (ms) */
    bool flag;   /* NOTIFY: final checkpoint */
} weir_mbmsg_t;

typedef struct weir_mailbox weir_mailbox_t;

weir_mailbox_t *weir_mailbox_new(void);
/** Frees the mailbox and any queued buffers. Accepts NULL; clears the pointer. */
void weir_mailbox_destroy(weir_mailbox_t **mb);
/** Enqueues a copy of @p msg (takes ownership of msg->buf). Any thread. */
void weir_mailbox_push(weir_mailbox_t *mb, const weir_mbmsg_t *msg);
/** Dequeues the oldest message. @p deadline_ns: absolute weir_now_ns() time to wait until;
 * 0 = do not wait; -1 = wait forever. @returns 1 when a message was dequeued, 0 on timeout. */
int weir_mailbox_pop(weir_mailbox_t *mb, weir_mbmsg_t *msg, int64_t deadline_ns);
size_t weir_mailbox_size(weir_mailbox_t *mb);
/** How many of the queued messages are input buffers (WEIR_MB_BUFFER): the task's in_queued
 * gauge. Any thread. */
size_t weir_mailbox_buffers(weir_mailbox_t *mb);

#endif
