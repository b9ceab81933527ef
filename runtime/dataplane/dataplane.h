/* The ZeroMQ data plane of one task manager: one ROUTER endpoint that peers send to, one DEALER
 * per peer task manager for what this one sends, and a registry of logical channels. A network
 * thread owns every socket; subtask threads hand it outgoing frames through a queue and an
 * eventfd. Channels whose both ends live in this task manager bypass the network: buffers and
 * credits go straight into the peer subtask's mailbox.
 *
 * Frames on the wire (one ZeroMQ multipart message per frame; the DEALER's routing id is the
 * sending data plane's advertised address):
 *   part 1: [type u8][channel key, 28 bytes][credits u32 LE, credit only]
 *           type 1 data, 2 credit (the total granted on the channel so far, mod 2^32),
 *           3 credit request (the sender opened its output: "send me your total")
 *   part 2: buffer bytes (data only)
 * Data frames and credit requests go to the receiver's endpoint, credit frames to the sender's
 * endpoint. A frame is accepted only for a registered channel end whose other end is the frame's
 * sender (its routing id); anything else is dropped without allocating (a canceled attempt, an
 * unknown channel, a peer that is not the channel's). Credits that arrive before the sender
 * registered its output are dropped and made up by the answer to its credit request.
 * With CURVE (weir_dataplane_opts_t.curve) only holders of the cluster key connect at all.
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef WEIR_RUNTIME_DATAPLANE_H
#define WEIR_RUNTIME_DATAPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/dataplane/channel.h"
#include "runtime/dataplane/mailbox.h"

typedef struct weir_dataplane weir_dataplane_t;

typedef struct weir_dataplane_stats {
    uint64_t frames_in, frames_out;   /* remote data frames */
    uint64_t bytes_in, bytes_out;     /* remote data bytes */
    uint64_t local_buffers;           /* buffers that bypassed the network */
    uint64_t dropped;                 /* frames for unknown channels */
    uint64_t credits_in, credits_out; /* remote credit frames */
    uint64_t rejected;                /* remote frames for a channel whose peer is another */
    uint64_t entries;                 /* channel registry entries (memory held for channels) */
} weir_dataplane_stats_t;

/** Largest data-frame body accepted when weir_dataplane_opts_t.max_buffer is 0 (64 MiB). */
#define WEIR_DATAPLANE_MAX_BUFFER ((size_t)64 * 1024 * 1024)

struct weir_curve;
typedef struct weir_dataplane_opts {
    const char *bind_host;
    int port;                       /* 0 = any free port */
    const char *advertise_host;     /* NULL = bind_host */
    const struct weir_curve *curve; /* NULL or disabled: no CURVE (loopback only) */
    size_t max_buffer; /* largest buffer a peer may send (ZMQ_MAXMSGSIZE); 0 = default */
} weir_dataplane_opts_t;

/** Binds tcp://bind_host:port (port 0 = any free port) and starts the network thread. The
 * advertised address is tcp://advertise_host:<bound port>. NULL + errstr on error. */
weir_dataplane_t *weir_dataplane_new(const char *bind_host, int port, const char *advertise_host,
                                     char *errstr, size_t errlen);
/** Like weir_dataplane_new, with CURVE (the ROUTER a CURVE server with a ZAP handler in the data
 * plane's context, the DEALERs CURVE clients) and a bound on buffer size. */
weir_dataplane_t *weir_dataplane_new_opts(const weir_dataplane_opts_t *opts, char *errstr,
                                          size_t errlen);
/** Stops the thread, closes sockets, frees queued buffers. Accepts NULL; clears the pointer. */
void weir_dataplane_destroy(weir_dataplane_t **dp);
/** "tcp://host:port" that peers use to reach this data plane. */
const char *weir_dataplane_address(const weir_dataplane_t *dp);

/** Registers the receiving end of @p key: buffers are pushed to @p mb as WEIR_MB_BUFFER with
 * @p index; @p initial_credits are granted to the sender at @p sender_address right away. */
int weir_dataplane_open_input(weir_dataplane_t *dp, const weir_chankey_t *key,
                              const char *sender_address, weir_mailbox_t *mb, uint32_t index,
                              uint32_t initial_credits);
/** Registers the sending end of @p key: credits are pushed to @p mb as WEIR_MB_CREDIT with
 * @p index (including credits that arrived before this call). */
int weir_dataplane_open_output(weir_dataplane_t *dp, const weir_chankey_t *key,
                               const char *receiver_address, weir_mailbox_t *mb, uint32_t index);
/** Sends a buffer on its channel (buf->key); takes ownership. The caller spent a credit. */
int weir_dataplane_send(weir_dataplane_t *dp, weir_netbuf_t *buf);
/** Grants @p n credits to the sender of @p key. */
int weir_dataplane_grant(weir_dataplane_t *dp, const weir_chankey_t *key, uint32_t n);
/** Unregisters every channel end that delivers into @p mb (a task calls this before it frees
 * its mailbox; afterwards nothing is pushed into @p mb). */
void weir_dataplane_close_mailbox(weir_dataplane_t *dp, weir_mailbox_t *mb);
/** Unregisters every channel of (job, attempt); later frames for them are dropped. */
void weir_dataplane_close_job(weir_dataplane_t *dp, const uint8_t job[16], uint32_t attempt);
void weir_dataplane_get_stats(weir_dataplane_t *dp, weir_dataplane_stats_t *out);

/** Puts the calling thread under SCHED_BATCH: a thread it wakes (a mailbox push, a network
 * frame) does not preempt it but waits for a free core or the end of its time slice. Data-plane
 * threads (subtasks, the network thread, ZeroMQ's I/O thread) hand buffers to each other all the
 * time; with preemption on wake-up every hand-off costs two context switches on a busy machine
 * (about half of them went away in a q1 profile, +15-20 % events per CPU-second). An idle core
 * still runs the woken thread at once. Failure (a seccomp or container policy) is ignored. */
void weir_dataplane_sched_batch(void);

#endif
