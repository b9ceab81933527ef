/* A fake task manager for job-manager tests (tests/unit/mock_tm.c, the static library
 * weir_mock_tm linked into the test_jm_* tests): a ZeroMQ DEALER whose routing id is the task
 * manager's id, speaking the control protocol of common/proto.h to a job manager's ROUTER. It
 * does only what a test tells it: register, heartbeat (with or without tasks), wait for a message
 * of one type (DEPLOY, CANCEL, TRIGGER, NOTIFY, BLOB, UNKNOWN...), report task states, acknowledge
 * checkpoints. Protocol failures fail the calling cmocka test. One mock is used by one thread at a
 * time. */
#ifndef WEIR_TESTS_MOCK_TM_H
#define WEIR_TESTS_MOCK_TM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/proto.h"

typedef struct weir_mock_tm {
    void *sock;                    /* ZMQ_DEALER, linger 0, routing id = id */
    char id[64];                   /* the task manager's resource id */
    int64_t heartbeat_interval_ms; /* from REGISTERED (weir_mock_tm_register) */
} weir_mock_tm_t;

/** A DEALER with routing id @p id connected to tcp://127.0.0.1:@p rpc_port; sends nothing. */
weir_mock_tm_t *weir_mock_tm_connect(void *zctx, int rpc_port, const char *id);
/** Connects and sends REGISTER (@p data_address, host 127.0.0.1, @p slots, pid 42), then waits
 * up to 5 s for REGISTERED and keeps its heartbeat interval. */
weir_mock_tm_t *weir_mock_tm_register(void *zctx, int rpc_port, const char *id,
                                      const char *data_address, uint32_t slots);
/** Closes the socket and frees the mock; *tm becomes NULL. */
void weir_mock_tm_close(weir_mock_tm_t **tm);

/** Sends one message. */
void weir_mock_tm_send(weir_mock_tm_t *tm, const weir_msg_t *m);
/** Receives messages until one of @p type arrives (others are dropped) into @p out (free with
 * weir_msg_clear). @returns 0, or -1 after @p timeout_ms. */
int weir_mock_tm_expect(weir_mock_tm_t *tm, weir_msg_type_t type, weir_msg_t *out, int timeout_ms);

/** Sends HEARTBEAT (no running tasks). */
void weir_mock_tm_heartbeat(weir_mock_tm_t *tm);
/** Sends HEARTBEAT listing @p n running tasks (as a task manager reports its live subtasks). */
void weir_mock_tm_heartbeat_tasks(weir_mock_tm_t *tm, const weir_msg_task_state_t *tasks,
                                  uint32_t n);
/** Sends TASK_STATE of subtask (@p vertex, @p subtask) of (@p job, @p attempt); @p message may be
 * NULL; @p metrics NULL reports zeros. */
void weir_mock_tm_task_state(weir_mock_tm_t *tm, const char *job, uint32_t attempt, uint32_t vertex,
                             uint32_t subtask, weir_task_state_t state, const char *message,
                             const weir_task_metrics_t *metrics);
/** Sends ACK_CHECKPOINT of checkpoint @p checkpoint_id for subtask (@p vertex, @p subtask), with
 * @p op_state (a string, or NULL) and @p keyed_handle (or NULL); every ack reports state_size
 * 100, uploaded_size 40 and an alignment of 7 ms. */
/** An operator-state array as a task acks it (one msgpack array, one element per operator of the
 * chain): element 0 is the string @p s, the other @p n_ops - 1 are nil. Written into @p buf as a
 * C string (the encoding has no NUL byte for short strings): pass it as weir_mock_tm_ack's
 * op_state. */
const char *weir_mock_tm_opstate(char *buf, size_t cap, const char *s, uint32_t n_ops);
/** The restore bundle of a DEPLOY (restore_op_state): writes "<old parallelism>:<old subtask>:<s>"
 * of the first state handed to chain operator @p op into @p out (its state must be a string), or
 * "" when the operator gets nothing (nil). Fails the test on a malformed bundle. */
void weir_mock_tm_bundle_str(const uint8_t *bundle, size_t len, uint32_t op, char *out, size_t cap);
void weir_mock_tm_ack(weir_mock_tm_t *tm, const char *job, uint32_t attempt, uint64_t checkpoint_id,
                      uint32_t vertex, uint32_t subtask, bool final, const char *op_state,
                      const char *keyed_handle);
/** Waits (5 s) for a TRIGGER_CHECKPOINT of @p job naming subtask (@p vertex, @p subtask).
 * @returns its checkpoint id. */
uint64_t weir_mock_tm_expect_trigger(weir_mock_tm_t *tm, const char *job, uint32_t vertex,
                                     uint32_t subtask);
/** Waits (5 s each) for NOTIFY_CHECKPOINTs of (@p job, @p attempt) until one has final ==
 * @p final. @returns its checkpoint id. */
uint64_t weir_mock_tm_expect_notify(weir_mock_tm_t *tm, const char *job, uint32_t attempt,
                                    bool final);

#endif
