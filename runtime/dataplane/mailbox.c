/* Owns the subtask mailbox: a multi-producer, single-consumer FIFO of weir_mbmsg_t.
 * Storage is a ring array that doubles when full (no allocation per message once warmed up).
 * Invariants: head indexes the oldest message, count <= cap, cap is a power of two; queued
 * messages own their buffers (destroy frees them).
 * Invariants (continued): buffers counts the queued WEIR_MB_BUFFER messages.
 * Threading: push, size and buffers from any thread, pop from the owning subtask thread; one mutex
 * guards the ring and a condition variable on CLOCK_MONOTONIC (the clock of weir_now_ns) wakes pop.
 */
#include "runtime/dataplane/mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

#define MB_INITIAL_CAP 16u

struct weir_mailbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    weir_mbmsg_t *ring;
    size_t cap;
    size_t head;
    size_t count;
    size_t buffers; /* queued WEIR_MB_BUFFER messages (weir_mailbox_buffers) */
};

weir_mailbox_t *weir_mailbox_new(void) {
    weir_mailbox_t *mb = weir_xcalloc(1, sizeof *mb);
    mb->cap = MB_INITIAL_CAP;
    mb->ring = weir_xcalloc(mb->cap, sizeof *mb->ring);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mb->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&mb->mu, NULL);
    return mb;
}

void weir_mailbox_destroy(weir_mailbox_t **mbp) {
    if (!mbp || !*mbp)
        return;
    weir_mailbox_t *mb = *mbp;
    for (size_t i = 0; i < mb->count; i++) {
        weir_mbmsg_t *m = &mb->ring[(mb->head + i) & (mb->cap - 1)];
        weir_netbuf_free(&m->buf);
    }
    free(mb->ring);
    pthread_cond_destroy(&mb->cv);
    pthread_mutex_destroy(&mb->mu);
    free(mb);
    *mbp = NULL;
}

void weir_mailbox_push(weir_mailbox_t *mb, const weir_mbmsg_t *msg) {
    pthread_mutex_lock(&mb->mu);
    if (mb->count == mb->cap) {
        /* doubles the full ring, oldest message first: cap stays a power of two */
        void *ring = mb->ring;
        weir_ring_grow(&ring, sizeof *mb->ring, &mb->head, mb->count, &mb->cap, MB_INITIAL_CAP);
        mb->ring = ring;
    }
    mb->ring[(mb->head + mb->count) & (mb->cap - 1)] = *msg;
    mb->count++;
    mb->buffers += msg->type == WEIR_MB_BUFFER;
    pthread_cond_signal(&mb->cv);
    pthread_mutex_unlock(&mb->mu);
}

int weir_mailbox_pop(weir_mailbox_t *mb, weir_mbmsg_t *msg, int64_t deadline_ns) {
    pthread_mutex_lock(&mb->mu);
    if (deadline_ns > 0) {
        struct timespec ts = {.tv_sec = deadline_ns / 1000000000LL,
                              .tv_nsec = deadline_ns % 1000000000LL};
        while (mb->count == 0) {
            int rc = pthread_cond_timedwait(&mb->cv, &mb->mu, &ts);
            if (rc == ETIMEDOUT)
                break;
        }
    } else if (deadline_ns < 0) {
        while (mb->count == 0)
            pthread_cond_wait(&mb->cv, &mb->mu);
    }
    if (mb->count == 0) {
        pthread_mutex_unlock(&mb->mu);
        return 0;
    }
    *msg = mb->ring[mb->head];
    memset(&mb->ring[mb->head], 0, sizeof *msg);
    mb->head = (mb->head + 1) & (mb->cap - 1);
    mb->count--;
    mb->buffers -= msg->type == WEIR_MB_BUFFER;
    pthread_mutex_unlock(&mb->mu);
    return 1;
}

size_t weir_mailbox_size(weir_mailbox_t *mb) {
    pthread_mutex_lock(&mb->mu);
    size_t n = mb->count;
    pthread_mutex_unlock(&mb->mu);
    return n;
}

size_t weir_mailbox_buffers(weir_mailbox_t *mb) {
    pthread_mutex_lock(&mb->mu);
    size_t n = mb->buffers;
    pthread_mutex_unlock(&mb->mu);
    return n;
}
