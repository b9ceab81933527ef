/* The buffer codec: records and in-band events serialized back to back in a byte buffer.
 * Buffers travel between subtasks (locally by pointer, remotely over ZeroMQ) unchanged.
 *
 * Entry layout (little-endian, no padding, no alignment assumed: read with memcpy):
 *   OFFSET SIZE DESCRIPTION
 *   0      1    kind: 1 record, 2 barrier, 3 watermark, 4 end of input, 5 watermark status
 *   record:
 *   1      8    timestamp (int64, ms)
 *   9      4    key length k (uint32, <= WEIR_MAX_KEY_LEN)
 *   13     4    value length v (uint32)
 *   17     k    key bytes
 *   17+k   v    value bytes (msgpack)
 *   barrier:
 *   1      8    checkpoint id (uint64)
 *   9      8    trigger timestamp (int64, ms)
 *   17     1    kind (weir_ck_kind_t: 0 checkpoint, 1 savepoint, 2 stop-with-savepoint)
 *   18     2    target length L (uint16, <= WEIR_BARRIER_TARGET_MAX; 0 for a checkpoint)
 *   20     L    target: the savepoint directory (bytes, no NUL, not terminated)
 *   watermark:
 *   1      8    watermark (int64, ms)
 *   end of input: no payload.
 *   watermark status (the sending subtask became idle / active again; docs/event-time.md):
 *   1      1    status: 0 active, 1 idle (any other value is corrupt)
 */
#ifndef WEIR_RUNTIME_RECORD_H
#define WEIR_RUNTIME_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

#define WEIR_RECORD_HEADER_SIZE 17u
#define WEIR_EVENT_BARRIER_HEADER_SIZE 20u /* a barrier is this + its target length */
#define WEIR_BARRIER_TARGET_MAX 4095u
#define WEIR_BARRIER_KIND_MAX 2u /* WEIR_CK_STOP */
#define WEIR_EVENT_WATERMARK_SIZE 9u
#define WEIR_EVENT_END_SIZE 1u
#define WEIR_EVENT_STATUS_SIZE 2u

typedef enum weir_event_kind {
    WEIR_EV_RECORD = 1,
    WEIR_EV_BARRIER = 2,
    WEIR_EV_WATERMARK = 3,
    WEIR_EV_END = 4,
    WEIR_EV_STATUS = 5,
} weir_event_kind_t;

/** A decoded entry; for records the pointers refer into the buffer (zero-copy). */
typedef struct weir_event {
    weir_event_kind_t kind;
    weir_record_t record;   /* WEIR_EV_RECORD */
    uint64_t checkpoint_id; /* WEIR_EV_BARRIER */
    int64_t timestamp;      /* WEIR_EV_BARRIER trigger time, WEIR_EV_WATERMARK value */
    uint8_t ck_kind;        /* WEIR_EV_BARRIER: weir_ck_kind_t */
    const char *target;     /* WEIR_EV_BARRIER: target_len bytes in the buffer (zero-copy, not
                               NUL-terminated); NULL when target_len is 0 */
    uint16_t target_len;
    bool idle; /* WEIR_EV_STATUS */
} weir_event_t;

/** Appends entries to a caller-owned byte array. */
typedef struct weir_bufwriter {
    uint8_t *data;
    size_t len;
    size_t cap;
} weir_bufwriter_t;

/** Reads entries from a byte array. */
typedef struct weir_bufreader {
    const uint8_t *pos;
    const uint8_t *end;
} weir_bufreader_t;

static inline size_t weir_record_encoded_size(const weir_record_t *rec) {
    return WEIR_RECORD_HEADER_SIZE + (size_t)rec->key_len + (size_t)rec->value_len;
}

static inline size_t weir_barrier_encoded_size(uint16_t target_len) {
    return WEIR_EVENT_BARRIER_HEADER_SIZE + (size_t)target_len;
}

void weir_bufwriter_init(weir_bufwriter_t *w, uint8_t *data, size_t cap);
/** Appends a record. @returns false (writer unchanged) when it does not fit. */
bool weir_bufwriter_record(weir_bufwriter_t *w, const weir_record_t *rec);
/** Appends a barrier of kind @p ck_kind (weir_ck_kind_t) with @p target_len bytes of @p target
 * (a savepoint's directory; 0 for a checkpoint). @returns false (writer unchanged) when it does
 * not fit, or when the kind or the target length is out of bounds (the reader refuses those). */
bool weir_bufwriter_barrier(weir_bufwriter_t *w, uint64_t checkpoint_id, int64_t timestamp,
                            uint8_t ck_kind, const char *target, uint16_t target_len);
bool weir_bufwriter_watermark(weir_bufwriter_t *w, int64_t watermark);
bool weir_bufwriter_end(weir_bufwriter_t *w);
/** Appends a watermark status (@p idle: the sender is idle; false: active again). */
bool weir_bufwriter_status(weir_bufwriter_t *w, bool idle);

void weir_bufreader_init(weir_bufreader_t *r, const uint8_t *data, size_t len);
/** Decodes the next entry. @returns 1 (got one), 0 (buffer exhausted) or WEIR_ECORRUPT
 * (truncated entry, unknown kind, key longer than WEIR_MAX_KEY_LEN, a barrier kind above
 * WEIR_BARRIER_KIND_MAX, a target longer than WEIR_BARRIER_TARGET_MAX or holding a NUL, a
 * watermark status other than 0 or 1). */
int weir_bufreader_next(weir_bufreader_t *r, weir_event_t *ev);

#endif
