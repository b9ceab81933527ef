/* Logical channels between subtasks and their credit accounting (no I/O here).
 *
 * A logical channel carries buffers from one upstream subtask to one downstream subtask of an
 * edge. The receiver owns a fixed number of buffer slots per channel (its credits). It grants
 * them to the sender up front and grants one back for every buffer it has consumed; the sender
 * sends only with a credit in hand. So at most `credits` buffers per channel are ever in flight
 * or queued, memory is bounded, and a slow consumer stops its producers (backpressure).
 * A channel that is blocked (barrier alignment, issue 3) keeps its returned credits until it is
 * unblocked.
 *
 * Channel key wire layout (28 bytes, as sent in every data-plane frame header):
 *   OFFSET SIZE DESCRIPTION
 *   0      16   job id (binary)
 *   16     4    attempt (uint32 LE): restarts use a new attempt, old frames are dropped
 *   20     4    edge id (uint32 LE): a graph's edge ids are never truncated
 *   24     2    source subtask (uint16 LE; subtasks < max parallelism <= 32768)
 *   26     2    target subtask (uint16 LE)
 */
#ifndef WEIR_RUNTIME_CHANNEL_H
#define WEIR_RUNTIME_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dataplane/record.h"

#define WEIR_CHANKEY_WIRE_SIZE 28u

typedef struct weir_chankey {
    uint8_t job[16];
    uint32_t attempt;
    uint32_t edge;
    uint16_t src;
    uint16_t dst;
} weir_chankey_t;

void weir_chankey_encode(const weir_chankey_t *key, uint8_t out[WEIR_CHANKEY_WIRE_SIZE]);
int weir_chankey_decode(const uint8_t *in, size_t len, weir_chankey_t *key);
bool weir_chankey_equal(const weir_chankey_t *a, const weir_chankey_t *b);
uint64_t weir_chankey_hash(const weir_chankey_t *key);

/** A buffer of encoded entries travelling on one channel. Heap-allocated; whoever holds the
 * pointer owns it (sender -> data plane -> receiver mailbox -> receiver). */
typedef struct weir_netbuf {
    weir_chankey_t key;
    size_t len;
    size_t cap;
    uint8_t *data;
    /** How weir_netbuf_free releases it: NULL for one block from weir_netbuf_new (the bytes
     * follow the header); the data plane sets it for a received buffer whose bytes are still
     * the transport's message (no copy). */
    void (*release)(struct weir_netbuf *buf);
} weir_netbuf_t;

/** Allocates a buffer with @p cap bytes of capacity. Never NULL (aborts on OOM). */
weir_netbuf_t *weir_netbuf_new(const weir_chankey_t *key, size_t cap);
void weir_netbuf_free(weir_netbuf_t **buf);

/** Sender side of one channel. Owned by the sending subtask thread. */
typedef struct weir_outchan {
    weir_chankey_t key;
    size_t buffer_size;
    uint32_t credits;       /* buffers the receiver can take now */
    weir_netbuf_t *cur;     /* buffer being filled, NULL when none */
    weir_bufwriter_t w;     /* writer over cur */
    int64_t first_write_ns; /* time of the first entry in cur (buffer timeout) */
    uint64_t buffers_sent;
    uint64_t bytes_sent;
    uint64_t records_sent;
} weir_outchan_t;

void weir_outchan_init(weir_outchan_t *ch, const weir_chankey_t *key, size_t buffer_size);
void weir_outchan_destroy(weir_outchan_t *ch);
/** Appends a record to the current buffer (allocating one; a record larger than buffer_size
 * gets a buffer of its own size). @returns false when the current buffer is full: the caller
 * must take and send it (with a credit) and retry. */
bool weir_outchan_write_record(weir_outchan_t *ch, const weir_record_t *rec, int64_t now_ns);
bool weir_outchan_write_end(weir_outchan_t *ch, int64_t now_ns);
/** Appends watermark @p wm / a watermark status (record.h). @returns false when the current
 * buffer is full (send it and retry). */
bool weir_outchan_write_watermark(weir_outchan_t *ch, int64_t wm, int64_t now_ns);
bool weir_outchan_write_status(weir_outchan_t *ch, bool idle, int64_t now_ns);
/** Appends barrier @p id (trigger time @p ts) of kind @p ck_kind with its target (record.h).
 * @returns false when the current buffer is full (send it and retry), or when the kind or the
 * target is out of the format's bounds (then an empty buffer refuses it too). */
bool weir_outchan_write_barrier(weir_outchan_t *ch, uint64_t id, int64_t ts, uint8_t ck_kind,
                                const char *target, uint16_t target_len, int64_t now_ns);
/** True when the current buffer holds data. */
bool weir_outchan_has_data(const weir_outchan_t *ch);
/** True when the current buffer holds data older than @p timeout_ns. */
bool weir_outchan_flush_due(const weir_outchan_t *ch, int64_t now_ns, int64_t timeout_ns);
/** Takes the current buffer for sending and consumes one credit. Requires credits > 0 and
 * has_data. The caller owns the returned buffer. */
weir_netbuf_t *weir_outchan_take(weir_outchan_t *ch);
void weir_outchan_add_credit(weir_outchan_t *ch, uint32_t n);

/** Receiver side of one channel. Owned by the receiving subtask thread. */
typedef struct weir_inchan {
    weir_chankey_t key;
    uint32_t capacity; /* credits granted in total (buffer slots) */
    uint32_t held;     /* buffers received and not yet consumed */
    uint32_t withheld; /* credits owed to the sender while blocked */
    uint32_t owed;     /* credits of consumed buffers kept back to grant as a batch */
    bool blocked;      /* alignment: do not return credits */
    bool ended;        /* end of input received */
    uint64_t buffers_received;
    uint64_t bytes_received;
} weir_inchan_t;

void weir_inchan_init(weir_inchan_t *ch, const weir_chankey_t *key, uint32_t capacity);
/** Accounts for an arriving buffer. @returns 0, or WEIR_EPROTO when the sender had no credit. */
int weir_inchan_on_buffer(weir_inchan_t *ch, size_t bytes);
/** Accounts for a consumed buffer. @returns the number of credits to grant the sender now (0
 * while blocked: they are withheld). */
uint32_t weir_inchan_consumed(weir_inchan_t *ch);
/** Like weir_inchan_consumed, but batches: the credit is kept as owed until half the capacity
 * (at least 1) is owed, then all of them are returned at once. Halves the credit messages (and
 * the wake-ups of network threads and senders they cause). Never stalls a sender: one without
 * credit has all `capacity` buffers outstanding (in flight, held, withheld or owed), so once
 * the receiver has consumed those in flight, at least a batch is owed and returned (or, while
 * blocked, returned by unblock). @returns the number of credits to grant the sender now. */
uint32_t weir_inchan_consumed_batched(weir_inchan_t *ch);
/** @returns the owed credits (and forgets them), for a receiver that wants to return them
 * early: grant them now. */
uint32_t weir_inchan_take_owed(weir_inchan_t *ch);
void weir_inchan_block(weir_inchan_t *ch);
/** Unblocks. @returns the withheld and owed credits to grant now. */
uint32_t weir_inchan_unblock(weir_inchan_t *ch);

#endif
