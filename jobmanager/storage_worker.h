/* The job manager's storage worker: ONE thread that runs the job manager's checkpoint and
 * savepoint storage calls (the _metadata put, the HA pointer put, retention, directory deletes, the
 * chk-* listing) off the main loop, so a frozen S3 server never stops heartbeats (jobmanager/
 * README.md, "Threads and locks"). Work items run in submission order (FIFO); each finished item
 * goes to a done list and the worker calls the wake-up callback; the main thread takes the done
 * list (weir_jm_sw_take_done) and applies each result under jm->mu.
 *
 * Invariants: items run one at a time in submission order and come back in that order; an item's
 * run function touches only the item (copies of what it writes, storages it opened itself or
 * thread-safe ones the job manager keeps until the worker is destroyed), never a job struct.
 *
 * Threading: submit and take_done are thread-safe; destroy from the thread that owns the worker,
 * once nobody submits any more. */
#ifndef WEIR_JOBMANAGER_STORAGE_WORKER_H
#define WEIR_JOBMANAGER_STORAGE_WORKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct weir_jm_sw weir_jm_sw_t;
typedef struct weir_jm_sw_item weir_jm_sw_item_t;

/** One unit of work. Embed it as the first member of a bigger struct holding the item's data. */
struct weir_jm_sw_item {
    weir_jm_sw_item_t *next; /* the worker's: queue and done list links */
    char job_id[33];         /* the job it is for ("" = none) */
    uint64_t gen;            /* the job's generation when submitted (stale results are ignored) */
    /** Runs on the worker thread, no lock held. */
    void (*run)(weir_jm_sw_item_t *it);
    /** Frees the item (after apply, or instead of run when the worker is destroyed). */
    void (*free)(weir_jm_sw_item_t *it);
    int kind; /* the submitter's tag: which result this is */
};

/** Starts the worker thread; @p wake(@p wake_arg) is called (from the worker) after each item
 * finished. @returns NULL with one line in errstr. */
weir_jm_sw_t *weir_jm_sw_new(void (*wake)(void *), void *wake_arg, char *errstr, size_t errlen);
/** Queues @p it (taken over) behind every item submitted before. */
void weir_jm_sw_submit(weir_jm_sw_t *sw, weir_jm_sw_item_t *it);
/** The finished items, oldest first (linked by next; the caller frees each), or NULL. */
weir_jm_sw_item_t *weir_jm_sw_take_done(weir_jm_sw_t *sw);
/** Items submitted and not yet taken back with weir_jm_sw_take_done. */
size_t weir_jm_sw_outstanding(weir_jm_sw_t *sw);
/** Stops the worker: the item running finishes (bounded by the storage's retry budget), queued
 * items are dropped without running, finished ones are freed without being applied; joins the
 * thread. Accepts NULL. */
void weir_jm_sw_destroy(weir_jm_sw_t **sw);

#endif
