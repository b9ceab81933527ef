/* ZeroMQ data plane of one task manager (see dataplane.h and runtime/dataplane/README.md).
 *
 * Owns: the zmq context, the ROUTER endpoint, one DEALER per peer address, the channel registry
 * (chankey -> input end / output end / pending credits), the outgoing frame queue and the stats.
 *
 * Threading: one network thread owns every socket (ROUTER and DEALERs) and is the only one that
 * touches them after start. Any thread may call the API: registry changes and every push into a
 * mailbox happen under `reg_lock`, so close_mailbox/close_job guarantee that nothing is pushed
 * into a removed mailbox after they return. Remote frames go through `q` (under `q_lock`) and an
 * eventfd that wakes the network thread; the thread swaps the whole queue out per wakeup.
 * Lock order: reg_lock may be held while taking a mailbox lock; q_lock is never held together
 * with reg_lock.
 *
 * Invariants: a netbuf is owned by exactly one of: the caller, the out queue, a zmq message (freed
 * by its free callback), a mailbox. Peer structs are never freed before destroy, so queued frames
 * and registry entries may point at them without reference counts.
 *
 * Attempt fencing: per job (the last FENCED_JOBS jobs), the newest attempt that opened a channel
 * end here. Anything of an older attempt of that job is stale (a task manager declared lost and
 * woken, or a task still stopping): its data and credit frames are dropped on arrival (data
 * before any allocation), its sends and grants are dropped, `open_*` for it return
 * WEIR_ECANCELED, and the pending credits it left are freed when the newer attempt opens. A data
 * frame for a channel without an input end is dropped before any allocation too. */
#include "runtime/dataplane/dataplane.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "common/curve.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define COMP "dataplane"
#define FRAME_DATA 1u
#define FRAME_CREDIT 2u
#define FRAME_CREDIT_REQUEST 3u
#define HDR_DATA_LEN (1u + WEIR_CHANKEY_WIRE_SIZE)
#define HDR_CREDIT_LEN (HDR_DATA_LEN + 4u)
#define CLOSED_JOBS 256u
#define FENCED_JOBS 256u
#define RECV_BATCH 1024

typedef struct peer {
    char *addr;
    void *dealer; /* network thread only */
    bool failed;  /* network thread only: connect failed, drop its frames */
    struct peer *next;
} peer_t;

/* One registered end of a channel in this data plane. */
typedef struct chan_end {
    bool open;
    bool local;         /* the other end lives in this data plane */
    weir_mailbox_t *mb; /* where this end's messages are pushed */
    uint32_t index;     /* input/output index within the subtask */
    peer_t *peer;       /* the other end's data plane (NULL when local) */
    uint32_t credits;   /* remote only: in = total granted, out = total received (mod 2^32) */
} chan_end_t;

typedef struct entry {
    weir_chankey_t key;
    uint64_t hash;
    chan_end_t in;  /* receiving end; in.peer = the sender's data plane (credit frames go there) */
    chan_end_t out; /* sending end; out.peer = the receiver's data plane (data frames go there) */
    uint32_t pending; /* local channels: credits granted before open_output */
    struct entry *next;
} entry_t;

typedef struct outframe {
    uint8_t type; /* FRAME_* */
    peer_t *peer;
    weir_netbuf_t *buf; /* data frame */
    weir_chankey_t key; /* credit and credit request frames */
    uint32_t n;         /* credit frame: total granted */
} outframe_t;

typedef struct outq {
    outframe_t *v;
    size_t n, cap;
} outq_t;

typedef struct closed_job {
    uint8_t job[16];
    uint32_t attempt;
} closed_job_t;

/* The newest attempt of a job that opened a channel end here. */
typedef struct job_fence {
    uint8_t job[16];
    uint32_t attempt;
} job_fence_t;

struct weir_dataplane {
    void *zctx;
    void *router;
    weir_zap_t *zap;    /* CURVE's ZAP handler in zctx, NULL without CURVE */
    weir_curve_t curve; /* the cluster key (enabled = false: no CURVE) */
    int efd;
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    char address[256];

    pthread_mutex_t reg_lock; /* guards buckets, peers, closed, fences */
    entry_t **buckets;
    size_t nbuckets, nentries;
    peer_t *peers;
    closed_job_t closed[CLOSED_JOBS];
    size_t nclosed; /* total ever closed; ring index = nclosed % CLOSED_JOBS */
    job_fence_t fences[FENCED_JOBS];
    size_t nfences; /* total jobs ever fenced; ring index = nfences % FENCED_JOBS */

    pthread_mutex_t q_lock; /* guards q, signaled */
    outq_t q;
    bool signaled; /* eventfd written and not yet drained */
    outq_t work;   /* network thread only */

    _Atomic uint64_t frames_in, frames_out, bytes_in, bytes_out, local_buffers, dropped;
    _Atomic uint64_t credits_in, credits_out, rejected;
};

static void stat_add(_Atomic uint64_t *c, uint64_t n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---------------------------------------------------------------- registry (reg_lock held) */

static entry_t *reg_find(weir_dataplane_t *dp, const weir_chankey_t *key) {
    uint64_t h = weir_chankey_hash(key);
    for (entry_t *e = dp->buckets[h & (dp->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && weir_chankey_equal(&e->key, key))
            return e;
    return NULL;
}

static void reg_grow(weir_dataplane_t *dp) {
    size_t nb = dp->nbuckets * 2;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < dp->nbuckets; i++) {
        entry_t *e = dp->buckets[i];
        while (e) {
            entry_t *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(dp->buckets);
    dp->buckets = b;
    dp->nbuckets = nb;
}

static entry_t *reg_get(weir_dataplane_t *dp, const weir_chankey_t *key) {
    entry_t *e = reg_find(dp, key);
    if (e)
        return e;
    if (dp->nentries >= dp->nbuckets)
        reg_grow(dp);
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->key = *key;
    e->hash = weir_chankey_hash(key);
    size_t b = e->hash & (dp->nbuckets - 1);
    e->next = dp->buckets[b];
    dp->buckets[b] = e;
    dp->nentries++;
    return e;
}

/* Removes every entry for which keep() is false after clearing ends; frees empty ones. */
static void reg_prune(weir_dataplane_t *dp, bool (*clear)(entry_t *e, const void *arg),
                      const void *arg) {
    for (size_t i = 0; i < dp->nbuckets; i++) {
        entry_t **pp = &dp->buckets[i];
        while (*pp) {
            entry_t *e = *pp;
            bool remove = clear(e, arg);
            if (remove || (!e->in.open && !e->out.open && e->pending == 0)) {
                *pp = e->next;
                free(e);
                dp->nentries--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static bool job_closed(weir_dataplane_t *dp, const weir_chankey_t *key) {
    size_t n = dp->nclosed < CLOSED_JOBS ? dp->nclosed : CLOSED_JOBS;
    for (size_t i = 0; i < n; i++)
        if (dp->closed[i].attempt == key->attempt && !memcmp(dp->closed[i].job, key->job, 16))
            return true;
    return false;
}

static job_fence_t *fence_find(weir_dataplane_t *dp, const uint8_t job[16]) {
    size_t n = dp->nfences < FENCED_JOBS ? dp->nfences : FENCED_JOBS;
    for (size_t i = 0; i < n; i++)
        if (!memcmp(dp->fences[i].job, job, 16))
            return &dp->fences[i];
    return NULL;
}

/* True when a newer attempt of @p key's job opened a channel end here. */
static bool fenced(weir_dataplane_t *dp, const weir_chankey_t *key) {
    const job_fence_t *f = fence_find(dp, key->job);
    return f && key->attempt < f->attempt;
}

/* Removes what an older attempt left without an open end (credits that arrived for it). */
static bool clear_fenced(entry_t *e, const void *arg) {
    const job_fence_t *f = arg;
    return e->key.attempt < f->attempt && !memcmp(e->key.job, f->job, 16) && !e->in.open &&
           !e->out.open;
}

/* @p key's attempt opened a channel end: it is the newest of its job now (when it is newer). */
static void fence_raise(weir_dataplane_t *dp, const weir_chankey_t *key) {
    job_fence_t *f = fence_find(dp, key->job);
    if (f && f->attempt >= key->attempt)
        return;
    if (!f) {
        f = &dp->fences[dp->nfences++ % FENCED_JOBS];
        memcpy(f->job, key->job, 16);
    }
    f->attempt = key->attempt;
    reg_prune(dp, clear_fenced, f);
}

static peer_t *peer_intern(weir_dataplane_t *dp, const char *addr) {
    for (peer_t *p = dp->peers; p; p = p->next)
        if (!strcmp(p->addr, addr))
            return p;
    peer_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->addr = strdup(addr);
    if (!p->addr) {
        free(p);
        return NULL;
    }
    p->next = dp->peers;
    dp->peers = p;
    return p;
}

/* Delivers @p n credits to the output end of @p e, or keeps them pending. */
static void deliver_credit(entry_t *e, uint32_t n) {
    if (e->out.open) {
        weir_mbmsg_t m = {.type = WEIR_MB_CREDIT, .index = e->out.index, .n = n};
        weir_mailbox_push(e->out.mb, &m);
    } else {
        e->pending += n;
    }
}

/* ---------------------------------------------------------------- outgoing queue */

static int enqueue(weir_dataplane_t *dp, uint8_t type, peer_t *peer, weir_netbuf_t *buf,
                   const weir_chankey_t *key, uint32_t n) {
    pthread_mutex_lock(&dp->q_lock);
    if (dp->q.n == dp->q.cap) {
        void *v = dp->q.v;
        if (weir_array_grow(&v, &dp->q.cap, dp->q.n + 1, sizeof(outframe_t), 64) != 0) {
            pthread_mutex_unlock(&dp->q_lock);
            return WEIR_ENOMEM;
        }
        dp->q.v = v;
    }
    outframe_t *f = &dp->q.v[dp->q.n++];
    f->type = type;
    f->peer = peer;
    f->buf = buf;
    f->n = n;
    if (key)
        f->key = *key;
    bool wake = !dp->signaled;
    dp->signaled = true;
    pthread_mutex_unlock(&dp->q_lock);
    if (wake) {
        uint64_t one = 1;
        if (write(dp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            WEIR_WARN(COMP, "eventfd write failed: %s", strerror(errno));
    }
    return 0;
}

/* ---------------------------------------------------------------- network thread */

static void free_netbuf_cb(void *data, void *hint) {
    (void)data;
    weir_netbuf_t *buf = hint;
    weir_netbuf_free(&buf);
}

static void *peer_dealer(weir_dataplane_t *dp, peer_t *p) {
    if (p->dealer || p->failed)
        return p->dealer;
    void *s = zmq_socket(dp->zctx, ZMQ_DEALER);
    int zero = 0;
    /* peers never send messages on this connection, only ZMTP commands (handshake metadata) */
    int64_t nothing_in = 4096;
    /* The routing id names this data plane to the peer: it accepts frames of a channel only from
     * the address registered as that channel's other end. */
    if (!s || zmq_setsockopt(s, ZMQ_ROUTING_ID, dp->address, strlen(dp->address)) ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &nothing_in, sizeof(nothing_in)) ||
        weir_curve_client(s, &dp->curve) || zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof(zero)) ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero)) ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) ||
        zmq_setsockopt(s, ZMQ_IMMEDIATE, &zero, sizeof(zero)) || zmq_connect(s, p->addr)) {
        WEIR_ERROR(COMP, "cannot connect to peer data plane %s: %s (check the advertised address)",
                   p->addr, zmq_strerror(zmq_errno()));
        if (s)
            zmq_close(s);
        p->failed = true;
        return NULL;
    }
    p->dealer = s;
    return s;
}

static void send_frame(weir_dataplane_t *dp, outframe_t *f) {
    void *s = peer_dealer(dp, f->peer);
    uint8_t hdr[HDR_CREDIT_LEN];
    if (!s) {
        weir_netbuf_free(&f->buf);
        return;
    }
    if (f->type == FRAME_DATA) {
        weir_netbuf_t *buf = f->buf;
        f->buf = NULL;
        size_t len = buf->len;
        hdr[0] = FRAME_DATA;
        weir_chankey_encode(&buf->key, hdr + 1);
        zmq_msg_t body;
        if (len == 0) {
            zmq_msg_init(&body);
            weir_netbuf_free(&buf);
        } else if (zmq_msg_init_data(&body, buf->data, len, free_netbuf_cb, buf)) {
            weir_netbuf_free(&buf);
            return;
        }
        if (zmq_send(s, hdr, HDR_DATA_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&body, s, ZMQ_DONTWAIT) < 0) {
            WEIR_WARN(COMP, "send to %s failed: %s", f->peer->addr, zmq_strerror(zmq_errno()));
            zmq_msg_close(&body); /* frees the netbuf through the callback */
            return;
        }
        /* bytes first: a reader that sees frames_out move also sees this frame's bytes */
        stat_add(&dp->bytes_out, len);
        stat_add(&dp->frames_out, 1);
    } else if (f->type == FRAME_CREDIT_REQUEST) {
        hdr[0] = FRAME_CREDIT_REQUEST;
        weir_chankey_encode(&f->key, hdr + 1);
        if (zmq_send(s, hdr, HDR_DATA_LEN, ZMQ_DONTWAIT) < 0)
            WEIR_WARN(COMP, "credit request to %s failed: %s", f->peer->addr,
                      zmq_strerror(zmq_errno()));
    } else {
        hdr[0] = FRAME_CREDIT;
        weir_chankey_encode(&f->key, hdr + 1);
        uint32_t n = f->n;
        for (int i = 0; i < 4; i++)
            hdr[HDR_DATA_LEN + i] = (uint8_t)(n >> (8 * i));
        if (zmq_send(s, hdr, HDR_CREDIT_LEN, ZMQ_DONTWAIT) < 0) {
            WEIR_WARN(COMP, "credit to %s failed: %s", f->peer->addr, zmq_strerror(zmq_errno()));
            return;
        }
        stat_add(&dp->credits_out, 1);
    }
}

static void drain_queue(weir_dataplane_t *dp) {
    uint64_t cnt;
    while (read(dp->efd, &cnt, sizeof(cnt)) > 0) {
    }
    pthread_mutex_lock(&dp->q_lock);
    outq_t tmp = dp->q;
    dp->q = dp->work;
    dp->work = tmp;
    dp->signaled = false;
    pthread_mutex_unlock(&dp->q_lock);
    for (size_t i = 0; i < dp->work.n; i++)
        send_frame(dp, &dp->work.v[i]);
    dp->work.n = 0;
}

/* Whether the frame's sender (its routing id) is @p end's peer: the data plane at the address the
 * placement gave for the other end of the channel. A local end has no remote peer. */
static bool from_peer(const chan_end_t *end, zmq_msg_t *ident) {
    if (!end->open || end->local || !end->peer)
        return false;
    size_t n = strlen(end->peer->addr);
    return zmq_msg_size(ident) == n && !memcmp(zmq_msg_data(ident), end->peer->addr, n);
}

/* Why a remote frame for @p key is not delivered; counted in `dropped`, and in `rejected` when
 * the channel exists but the sender is not its peer. Nothing is allocated for it. */
static void drop(weir_dataplane_t *dp, bool rejected) {
    stat_add(&dp->dropped, 1);
    if (rejected)
        stat_add(&dp->rejected, 1);
}

/* The registered input end of @p key, unless fenced (reg_lock held). */
static entry_t *input_end(weir_dataplane_t *dp, const weir_chankey_t *key) {
    entry_t *e = fenced(dp, key) ? NULL : reg_find(dp, key);
    return e && e->in.open ? e : NULL;
}

/* A received buffer that keeps the ZeroMQ message it arrived in: its bytes are the message's
 * (ZeroMQ reads a large frame straight into its own allocation), so nothing is copied; freeing
 * the netbuf closes the message. */
typedef struct rxbuf {
    weir_netbuf_t nb;
    zmq_msg_t msg;
} rxbuf_t;

static void rxbuf_release(weir_netbuf_t *nb) {
    rxbuf_t *r = (rxbuf_t *)nb; /* nb is the first member */
    zmq_msg_close(&r->msg);
    free(r);
}

/* Moves @p body into a new netbuf of channel @p key. */
static weir_netbuf_t *rxbuf_take(const weir_chankey_t *key, zmq_msg_t *body) {
    rxbuf_t *r = malloc(sizeof *r);
    if (!r)
        abort();
    zmq_msg_init(&r->msg);
    zmq_msg_move(&r->msg, body);
    r->nb.key = *key;
    r->nb.len = r->nb.cap = zmq_msg_size(&r->msg);
    r->nb.data = zmq_msg_data(&r->msg);
    r->nb.release = rxbuf_release;
    return &r->nb;
}

static void on_data(weir_dataplane_t *dp, const weir_chankey_t *key, zmq_msg_t *ident,
                    zmq_msg_t *body) {
    size_t len = body ? zmq_msg_size(body) : 0;
    stat_add(&dp->frames_in, 1);
    stat_add(&dp->bytes_in, len);
    bool delivered = false, known = false;
    pthread_mutex_lock(&dp->reg_lock);
    entry_t *e = input_end(dp, key);
    known = e != NULL;
    if (known && from_peer(&e->in, ident)) {
        weir_netbuf_t *buf = len ? rxbuf_take(key, body) : weir_netbuf_new(key, 1);
        weir_mbmsg_t m = {.type = WEIR_MB_BUFFER, .index = e->in.index, .buf = buf};
        weir_mailbox_push(e->in.mb, &m);
        delivered = true;
    }
    pthread_mutex_unlock(&dp->reg_lock);
    if (!delivered)
        drop(dp, known);
}

/* A credit frame carries the total the receiver granted on the channel so far (mod 2^32): a
 * frame lost or dropped (it arrived before open_output) is made up by any later one, and a stale
 * or repeated total (serial-number arithmetic: not ahead by 1..2^31-1) delivers nothing. */
static void on_credit(weir_dataplane_t *dp, const weir_chankey_t *key, zmq_msg_t *ident,
                      uint32_t total) {
    stat_add(&dp->credits_in, 1);
    bool known = false, ok = false;
    pthread_mutex_lock(&dp->reg_lock);
    entry_t *e = job_closed(dp, key) || fenced(dp, key) ? NULL : reg_find(dp, key);
    known = e && e->out.open;
    if (known && from_peer(&e->out, ident)) {
        ok = true;
        uint32_t delta = total - e->out.credits;
        if (delta != 0 && delta < 0x80000000u) {
            e->out.credits = total;
            deliver_credit(e, delta);
        }
    }
    pthread_mutex_unlock(&dp->reg_lock);
    if (!ok)
        drop(dp, known);
}

/* The sender of a channel opened its output and asks for the total granted so far (its earlier
 * credit frames may have arrived before it registered). Answered only to the channel's peer. */
static void on_credit_request(weir_dataplane_t *dp, const weir_chankey_t *key, zmq_msg_t *ident) {
    bool known = false;
    outframe_t f = {.type = FRAME_CREDIT, .key = *key};
    pthread_mutex_lock(&dp->reg_lock);
    entry_t *e = reg_find(dp, key);
    known = e && e->in.open;
    if (known && from_peer(&e->in, ident)) {
        f.peer = e->in.peer;
        f.n = e->in.credits;
    }
    pthread_mutex_unlock(&dp->reg_lock);
    if (f.peer)
        send_frame(dp, &f); /* the network thread owns the DEALERs */
    else
        drop(dp, known);
}

/* Receives one multipart message from the ROUTER: [identity][header][payload?]. Parts past the
 * third are read and discarded (the frame is then malformed). @returns false when none was
 * ready. */
static bool recv_one(weir_dataplane_t *dp) {
    zmq_msg_t part[3];
    int nparts = 0;
    zmq_msg_init(&part[0]);
    if (zmq_msg_recv(&part[0], dp->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part[0]);
        return false;
    }
    nparts = 1;
    bool more = zmq_msg_more(&part[0]);
    while (more && nparts < 3) {
        zmq_msg_init(&part[nparts]);
        if (zmq_msg_recv(&part[nparts], dp->router, 0) < 0) {
            zmq_msg_close(&part[nparts]);
            break;
        }
        more = zmq_msg_more(&part[nparts]);
        nparts++;
    }
    bool extra = false;
    while (more) { /* atomic multipart: the rest is already here */
        zmq_msg_t scratch;
        zmq_msg_init(&scratch);
        more = zmq_msg_recv(&scratch, dp->router, 0) >= 0 && zmq_msg_more(&scratch);
        zmq_msg_close(&scratch);
        extra = true;
    }
    const uint8_t *hdr = nparts >= 2 ? zmq_msg_data(&part[1]) : NULL;
    size_t hlen = nparts >= 2 ? zmq_msg_size(&part[1]) : 0;
    weir_chankey_t key;
    bool ok = !extra && hlen >= HDR_DATA_LEN &&
              weir_chankey_decode(hdr + 1, WEIR_CHANKEY_WIRE_SIZE, &key) == 0;
    if (ok && hdr[0] == FRAME_DATA && hlen == HDR_DATA_LEN) {
        on_data(dp, &key, &part[0], nparts == 3 ? &part[2] : NULL);
    } else if (ok && hdr[0] == FRAME_CREDIT && hlen == HDR_CREDIT_LEN && nparts == 2) {
        const uint8_t *c = hdr + HDR_DATA_LEN;
        uint32_t n =
            (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
        on_credit(dp, &key, &part[0], n);
    } else if (ok && hdr[0] == FRAME_CREDIT_REQUEST && hlen == HDR_DATA_LEN && nparts == 2) {
        on_credit_request(dp, &key, &part[0]);
    } else {
        WEIR_DEBUG(COMP, "malformed frame (%d parts, header %zu bytes) dropped", nparts, hlen);
        stat_add(&dp->dropped, 1);
    }
    for (int i = 0; i < nparts; i++)
        zmq_msg_close(&part[i]);
    return true;
}

/* The network thread, SCHED_BATCH (weir_dataplane_sched_batch). */
static void *net_thread(void *arg) {
    weir_dataplane_t *dp = arg;
    weir_thread_name("weir-net");
    weir_dataplane_sched_batch();
    zmq_pollitem_t items[2] = {
        {.socket = dp->router, .events = ZMQ_POLLIN},
        {.socket = NULL, .fd = dp->efd, .events = ZMQ_POLLIN},
    };
    while (!atomic_load(&dp->stop)) {
        int rc = zmq_poll(items, 2, 1000);
        if (rc < 0) {
            if (zmq_errno() == EINTR)
                continue;
            WEIR_ERROR(COMP, "zmq_poll failed: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (atomic_load(&dp->stop))
            break;
        if (items[1].revents & ZMQ_POLLIN)
            drain_queue(dp);
        if (items[0].revents & ZMQ_POLLIN)
            for (int i = 0; i < RECV_BATCH && recv_one(dp); i++) {
            }
    }
    for (peer_t *p = dp->peers; p; p = p->next)
        if (p->dealer) {
            zmq_close(p->dealer);
            p->dealer = NULL;
        }
    zmq_close(dp->router);
    dp->router = NULL;
    return NULL;
}

/* ---------------------------------------------------------------- API */

void weir_dataplane_sched_batch(void) {
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp) != 0)
        WEIR_DEBUG(COMP, "SCHED_BATCH refused: the thread keeps SCHED_OTHER");
}

weir_dataplane_t *weir_dataplane_new(const char *bind_host, int port, const char *advertise_host,
                                     char *errstr, size_t errlen) {
    weir_dataplane_opts_t o = {
        .bind_host = bind_host, .port = port, .advertise_host = advertise_host};
    return weir_dataplane_new_opts(&o, errstr, errlen);
}

weir_dataplane_t *weir_dataplane_new_opts(const weir_dataplane_opts_t *o, char *errstr,
                                          size_t errlen) {
    const char *bind_host = o->bind_host, *advertise_host = o->advertise_host;
    int port = o->port;
    char ep[300];
    if (!bind_host || port < 0 || port > 65535) {
        snprintf(errstr, errlen, "data plane: bad bind address or port %d (use 0..65535)", port);
        return NULL;
    }
    if (!advertise_host)
        advertise_host = bind_host;
    weir_dataplane_t *dp = calloc(1, sizeof(*dp));
    if (!dp) {
        snprintf(errstr, errlen, "data plane: out of memory");
        return NULL;
    }
    dp->efd = -1;
    pthread_mutex_init(&dp->reg_lock, NULL);
    pthread_mutex_init(&dp->q_lock, NULL);
    dp->nbuckets = 64;
    dp->buckets = calloc(dp->nbuckets, sizeof(*dp->buckets));
    dp->zctx = zmq_ctx_new();
    if (dp->zctx) /* the I/O thread too (see weir_dataplane_sched_batch) */
        zmq_ctx_set(dp->zctx, ZMQ_THREAD_SCHED_POLICY, SCHED_BATCH);
    dp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!dp->buckets || !dp->zctx || dp->efd < 0) {
        snprintf(errstr, errlen, "data plane: cannot create zmq context/eventfd: %s",
                 strerror(errno));
        goto fail;
    }
    if (o->curve && o->curve->enabled) {
        dp->curve = *o->curve;
        if (!(dp->zap = weir_zap_start(dp->zctx, &dp->curve, errstr, errlen)))
            goto fail;
    }
    dp->router = zmq_socket(dp->zctx, ZMQ_ROUTER);
    int zero = 0;
    /* a data frame's body is one buffer: the segment size, or one larger record */
    int64_t max_part =
        (int64_t)(o->max_buffer ? o->max_buffer : WEIR_DATAPLANE_MAX_BUFFER) + HDR_CREDIT_LEN;
    if (!dp->router || weir_curve_server(dp->router, &dp->curve) ||
        zmq_setsockopt(dp->router, ZMQ_MAXMSGSIZE, &max_part, sizeof(max_part)) ||
        zmq_setsockopt(dp->router, ZMQ_SNDHWM, &zero, sizeof(zero)) ||
        zmq_setsockopt(dp->router, ZMQ_RCVHWM, &zero, sizeof(zero)) ||
        zmq_setsockopt(dp->router, ZMQ_LINGER, &zero, sizeof(zero))) {
        snprintf(errstr, errlen, "data plane: cannot create ROUTER socket: %s",
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (port)
        snprintf(ep, sizeof(ep), "tcp://%s:%d", bind_host, port);
    else
        snprintf(ep, sizeof(ep), "tcp://%s:*", bind_host);
    if (zmq_bind(dp->router, ep)) {
        snprintf(errstr, errlen,
                 "data plane: cannot bind %s: %s (set taskmanager.bind-host / "
                 "taskmanager.data.port to a free local address)",
                 ep, zmq_strerror(zmq_errno()));
        goto fail;
    }
    char last[300];
    size_t lastlen = sizeof(last);
    const char *colon;
    if (zmq_getsockopt(dp->router, ZMQ_LAST_ENDPOINT, last, &lastlen) ||
        !(colon = strrchr(last, ':'))) {
        snprintf(errstr, errlen, "data plane: cannot read bound endpoint of %s", ep);
        goto fail;
    }
    int bound = atoi(colon + 1);
    if (snprintf(dp->address, sizeof(dp->address), "tcp://%s:%d", advertise_host, bound) >=
        (int)sizeof(dp->address)) {
        snprintf(errstr, errlen, "data plane: advertised host too long: %s", advertise_host);
        goto fail;
    }
    if (pthread_create(&dp->thread, NULL, net_thread, dp)) {
        snprintf(errstr, errlen, "data plane: cannot start network thread");
        goto fail;
    }
    dp->thread_started = true;
    WEIR_INFO(COMP, "data plane bound to %s, advertised as %s (%s)", last, dp->address,
              dp->zap ? "CURVE: cluster key holders only" : "no authentication");
    return dp;
fail:
    weir_dataplane_destroy(&dp);
    return NULL;
}

static bool clear_all(entry_t *e, const void *arg) {
    (void)e;
    (void)arg;
    return true;
}

void weir_dataplane_destroy(weir_dataplane_t **dpp) {
    if (!dpp || !*dpp)
        return;
    weir_dataplane_t *dp = *dpp;
    *dpp = NULL;
    if (dp->thread_started) {
        atomic_store(&dp->stop, true);
        uint64_t one = 1;
        if (write(dp->efd, &one, sizeof(one)) < 0)
            WEIR_WARN(COMP, "eventfd write failed: %s", strerror(errno));
        pthread_join(dp->thread, NULL);
    }
    if (dp->router)
        zmq_close(dp->router);
    weir_zap_stop(&dp->zap);
    if (dp->zctx)
        zmq_ctx_term(dp->zctx);
    if (dp->efd >= 0)
        close(dp->efd);
    for (size_t i = 0; i < dp->q.n; i++)
        weir_netbuf_free(&dp->q.v[i].buf);
    for (size_t i = 0; i < dp->work.n; i++)
        weir_netbuf_free(&dp->work.v[i].buf);
    free(dp->q.v);
    free(dp->work.v);
    if (dp->buckets)
        reg_prune(dp, clear_all, NULL);
    free(dp->buckets);
    while (dp->peers) {
        peer_t *p = dp->peers;
        dp->peers = p->next;
        free(p->addr);
        free(p);
    }
    pthread_mutex_destroy(&dp->reg_lock);
    pthread_mutex_destroy(&dp->q_lock);
    memset(&dp->curve, 0, sizeof(dp->curve));
    free(dp);
}

const char *weir_dataplane_address(const weir_dataplane_t *dp) {
    return dp->address;
}

/* Registers one end of @p key (under the registry lock). On success *e_out is the entry, whose
 * `in` or `out` end is filled; the caller completes the side-specific part before unlocking. */
static int open_end(weir_dataplane_t *dp, const weir_chankey_t *key, const char *peer_address,
                    weir_mailbox_t *mb, uint32_t index, bool input, entry_t **e_out) {
    if (job_closed(dp, key) || fenced(dp, key))
        return WEIR_ECANCELED;
    bool local = !strcmp(peer_address, dp->address);
    peer_t *peer = local ? NULL : peer_intern(dp, peer_address);
    entry_t *e = (local || peer) ? reg_get(dp, key) : NULL;
    if (!e)
        return WEIR_ENOMEM;
    chan_end_t *end = input ? &e->in : &e->out;
    if (end->open)
        return WEIR_EEXIST;
    *end = (chan_end_t){.open = true, .local = local, .mb = mb, .index = index, .peer = peer};
    fence_raise(dp, key); /* never frees e: it has an open end */
    *e_out = e;
    return 0;
}

int weir_dataplane_open_input(weir_dataplane_t *dp, const weir_chankey_t *key,
                              const char *sender_address, weir_mailbox_t *mb, uint32_t index,
                              uint32_t initial_credits) {
    if (!dp || !key || !sender_address || !mb)
        return WEIR_EINVAL;
    entry_t *e = NULL;
    pthread_mutex_lock(&dp->reg_lock);
    int rc = open_end(dp, key, sender_address, mb, index, true, &e);
    peer_t *peer = rc == 0 ? e->in.peer : NULL;
    uint32_t total = 0;
    if (rc == 0 && e->in.local && initial_credits)
        deliver_credit(e, initial_credits);
    if (peer)
        total = e->in.credits += initial_credits;
    pthread_mutex_unlock(&dp->reg_lock);
    if (rc == 0 && peer && initial_credits)
        rc = enqueue(dp, FRAME_CREDIT, peer, NULL, key, total);
    return rc;
}

int weir_dataplane_open_output(weir_dataplane_t *dp, const weir_chankey_t *key,
                               const char *receiver_address, weir_mailbox_t *mb, uint32_t index) {
    if (!dp || !key || !receiver_address || !mb)
        return WEIR_EINVAL;
    entry_t *e = NULL;
    pthread_mutex_lock(&dp->reg_lock);
    int rc = open_end(dp, key, receiver_address, mb, index, false, &e);
    peer_t *peer = rc == 0 ? e->out.peer : NULL;
    if (rc == 0 && e->pending) {
        uint32_t n = e->pending;
        e->pending = 0;
        deliver_credit(e, n);
    }
    pthread_mutex_unlock(&dp->reg_lock);
    /* credits the receiver granted before this registration were dropped: ask for the total */
    if (peer)
        rc = enqueue(dp, FRAME_CREDIT_REQUEST, peer, NULL, key, 0);
    return rc;
}

int weir_dataplane_send(weir_dataplane_t *dp, weir_netbuf_t *buf) {
    if (!dp || !buf) {
        weir_netbuf_free(&buf);
        return WEIR_EINVAL;
    }
    peer_t *peer = NULL;
    int rc = 0;
    bool dropped = false;
    pthread_mutex_lock(&dp->reg_lock);
    entry_t *e = reg_find(dp, &buf->key);
    if (!e || !e->out.open) {
        rc = WEIR_ENOTFOUND;
    } else if (fenced(dp, &buf->key)) {
        dropped = true; /* a newer attempt runs: nothing of this one leaves */
    } else if (e->out.local) {
        if (e->in.open) {
            weir_mbmsg_t m = {.type = WEIR_MB_BUFFER, .index = e->in.index, .buf = buf};
            weir_mailbox_push(e->in.mb, &m);
            buf = NULL;
            stat_add(&dp->local_buffers, 1);
        } else {
            dropped = true; /* receiver closed its mailbox: like a remote drop */
        }
    } else {
        peer = e->out.peer;
    }
    pthread_mutex_unlock(&dp->reg_lock);
    if (peer) {
        rc = enqueue(dp, FRAME_DATA, peer, buf, NULL, 0);
        if (rc == 0)
            return 0;
    }
    if (dropped)
        stat_add(&dp->dropped, 1);
    weir_netbuf_free(&buf);
    return rc;
}

int weir_dataplane_grant(weir_dataplane_t *dp, const weir_chankey_t *key, uint32_t n) {
    if (!dp || !key)
        return WEIR_EINVAL;
    if (n == 0)
        return 0;
    peer_t *peer = NULL;
    int rc = 0;
    uint32_t total = 0;
    pthread_mutex_lock(&dp->reg_lock);
    entry_t *e = reg_find(dp, key);
    if (!e || !e->in.open) {
        rc = WEIR_ENOTFOUND;
    } else if (fenced(dp, key)) {
        rc = 0; /* a newer attempt runs: its credits are worthless */
    } else if (e->in.local) {
        deliver_credit(e, n);
    } else {
        peer = e->in.peer;
        total = e->in.credits += n;
    }
    pthread_mutex_unlock(&dp->reg_lock);
    if (peer)
        rc = enqueue(dp, FRAME_CREDIT, peer, NULL, key, total);
    return rc;
}

static bool clear_mailbox(entry_t *e, const void *arg) {
    if (e->in.open && e->in.mb == arg)
        e->in.open = false;
    if (e->out.open && e->out.mb == arg)
        e->out.open = false;
    return false;
}

void weir_dataplane_close_mailbox(weir_dataplane_t *dp, weir_mailbox_t *mb) {
    if (!dp || !mb)
        return;
    pthread_mutex_lock(&dp->reg_lock);
    reg_prune(dp, clear_mailbox, mb);
    pthread_mutex_unlock(&dp->reg_lock);
}

static bool clear_job(entry_t *e, const void *arg) {
    const closed_job_t *j = arg;
    return e->key.attempt == j->attempt && !memcmp(e->key.job, j->job, 16);
}

void weir_dataplane_close_job(weir_dataplane_t *dp, const uint8_t job[16], uint32_t attempt) {
    if (!dp || !job)
        return;
    closed_job_t j = {.attempt = attempt};
    memcpy(j.job, job, 16);
    pthread_mutex_lock(&dp->reg_lock);
    weir_chankey_t probe = {.attempt = attempt};
    memcpy(probe.job, job, 16);
    if (!job_closed(dp, &probe))
        dp->closed[dp->nclosed++ % CLOSED_JOBS] = j;
    reg_prune(dp, clear_job, &j);
    pthread_mutex_unlock(&dp->reg_lock);
}

void weir_dataplane_get_stats(weir_dataplane_t *dp, weir_dataplane_stats_t *out) {
    out->frames_in = atomic_load(&dp->frames_in);
    out->frames_out = atomic_load(&dp->frames_out);
    out->bytes_in = atomic_load(&dp->bytes_in);
    out->bytes_out = atomic_load(&dp->bytes_out);
    out->local_buffers = atomic_load(&dp->local_buffers);
    out->dropped = atomic_load(&dp->dropped);
    out->credits_in = atomic_load(&dp->credits_in);
    out->credits_out = atomic_load(&dp->credits_out);
    out->rejected = atomic_load(&dp->rejected);
    pthread_mutex_lock(&dp->reg_lock);
    out->entries = dp->nentries;
    pthread_mutex_unlock(&dp->reg_lock);
}
