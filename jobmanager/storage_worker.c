/* Owns the job manager's storage worker thread (storage_worker.h): a FIFO of work items run one at
 * a time, a done list handed back to the main loop, the wake-up after each item, and the stop.
 *
 * Invariants: the queue and the done list keep submission order; an item is in exactly one of
 * queue, running, done (or freed); `outstanding` counts submitted items not yet taken back.
 *
 * Threading: one worker thread; sw->mu guards the lists and flags (never held while an item runs
 * or while the wake-up callback runs); submit / take_done / outstanding from any thread; destroy
 * by the owner once nobody submits. */
#include "jobmanager/storage_worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct weir_jm_sw {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    weir_jm_sw_item_t *q_head, *q_tail;       /* to run */
    weir_jm_sw_item_t *done_head, *done_tail; /* finished, to apply */
    size_t outstanding;
    bool stop;
    void (*wake)(void *);
    void *wake_arg;
};

static void *worker_main(void *arg) {
    weir_jm_sw_t *sw = arg;
    pthread_mutex_lock(&sw->mu);
    for (;;) {
        while (!sw->q_head && !sw->stop)
            pthread_cond_wait(&sw->cv, &sw->mu);
        if (sw->stop)
            break;
        weir_jm_sw_item_t *it = sw->q_head;
        sw->q_head = it->next;
        if (!sw->q_head)
            sw->q_tail = NULL;
        it->next = NULL;
        pthread_mutex_unlock(&sw->mu);
        it->run(it);
        pthread_mutex_lock(&sw->mu);
        if (sw->done_tail)
            sw->done_tail->next = it;
        else
            sw->done_head = it;
        sw->done_tail = it;
        pthread_mutex_unlock(&sw->mu);
        if (sw->wake)
            sw->wake(sw->wake_arg);
        pthread_mutex_lock(&sw->mu);
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

weir_jm_sw_t *weir_jm_sw_new(void (*wake)(void *), void *wake_arg, char *errstr, size_t errlen) {
    weir_jm_sw_t *sw = calloc(1, sizeof *sw);
    if (!sw) {
        weir_fmt(errstr, errlen, "job manager: out of memory (storage worker)");
        return NULL;
    }
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    sw->wake = wake;
    sw->wake_arg = wake_arg;
    if (pthread_create(&sw->thread, NULL, worker_main, sw) != 0) {
        weir_fmt(errstr, errlen, "job manager: cannot start the storage worker thread");
        pthread_cond_destroy(&sw->cv);
        pthread_mutex_destroy(&sw->mu);
        free(sw);
        return NULL;
    }
    return sw;
}

void weir_jm_sw_submit(weir_jm_sw_t *sw, weir_jm_sw_item_t *it) {
    it->next = NULL;
    pthread_mutex_lock(&sw->mu);
    if (sw->q_tail)
        sw->q_tail->next = it;
    else
        sw->q_head = it;
    sw->q_tail = it;
    sw->outstanding++;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
}

weir_jm_sw_item_t *weir_jm_sw_take_done(weir_jm_sw_t *sw) {
    pthread_mutex_lock(&sw->mu);
    weir_jm_sw_item_t *list = sw->done_head;
    for (weir_jm_sw_item_t *it = list; it; it = it->next)
        sw->outstanding--;
    sw->done_head = sw->done_tail = NULL;
    pthread_mutex_unlock(&sw->mu);
    return list;
}

size_t weir_jm_sw_outstanding(weir_jm_sw_t *sw) {
    pthread_mutex_lock(&sw->mu);
    size_t n = sw->outstanding;
    pthread_mutex_unlock(&sw->mu);
    return n;
}

static void free_list(weir_jm_sw_item_t *it) {
    while (it) {
        weir_jm_sw_item_t *next = it->next;
        it->free(it);
        it = next;
    }
}

void weir_jm_sw_destroy(weir_jm_sw_t **swp) {
    if (!swp || !*swp)
        return;
    weir_jm_sw_t *sw = *swp;
    pthread_mutex_lock(&sw->mu);
    sw->stop = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    pthread_join(sw->thread, NULL);
    free_list(sw->q_head);
    free_list(sw->done_head);
    pthread_cond_destroy(&sw->cv);
    pthread_mutex_destroy(&sw->mu);
    free(sw);
    *swp = NULL;
}
