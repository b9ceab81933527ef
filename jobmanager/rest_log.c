/* Owns the log proxy of GET /taskmanagers/{id}/log (docs/rest.md): the requests waiting for a
 * task manager's LOG answer. The REST handler suspends its connection (libmicrohttpd's
 * suspend/resume: the REST thread serves other requests meanwhile), registers a request here,
 * which queues LOG_REQUEST {request_id, max_bytes} to the task manager; the main thread completes
 * it with the LOG carrying that request id, or times it out after WEIR_JM_LOG_TIMEOUT_MS, and
 * resumes the connection; the handler then answers 200 (text/plain, the tail) or 504.
 *
 * Invariants: a request is in jm->logreqs from weir__jm_log_begin until weir__jm_log_finish; its
 * connection is resumed exactly once (weir__jm_log_resume sets `resumed` under jm->mu), only
 * after the handler suspended it and said so (`suspended`), and only once the request is no longer
 * waiting (answered, timed out, gone). A LOG is accepted only from the task manager the request
 * went to (same id, same registration) and only while the request waits; its tail is cut to
 * max_bytes, from a line start. Request ids are never reused (a counter from 1).
 *
 * Threading: begin, result and finish run on the REST thread and take jm->mu; answers and
 * timeouts run on the main thread with jm->mu held; weir__jm_log_resume runs without jm->mu and
 * calls MHD_resume_connection only after releasing it (jm->mu is never held while calling into
 * libmicrohttpd). */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "jobmanager/jobmanager_int.h"

#define COMP "jobmanager"

struct weir_jm_logreq {
    uint64_t id;
    uint64_t tm_seq; /* the task manager instance asked */
    uint32_t max_bytes;
    int64_t deadline_ns;
    struct MHD_Connection *conn;
    weir_jm_log_status_t status;
    bool suspended; /* the REST handler suspended its connection */
    bool resumed;   /* its connection was (or is being) resumed */
    uint8_t *data;
    size_t len;
    weir_jm_logreq_t *next;
};

weir_jm_logreq_t *weir__jm_log_begin(weir_jobmanager_t *jm, const char *tm_id, uint32_t max_bytes,
                                     void *conn, bool *oom) {
    *oom = false;
    pthread_mutex_lock(&jm->mu);
    /* none once the REST server stops: libmicrohttpd must not stop with a suspended connection */
    weir_jm_tm_t *tm = jm->log_closing ? NULL : weir__jm_find_tm_id_locked(jm, tm_id);
    weir_jm_logreq_t *r = tm ? calloc(1, sizeof *r) : NULL;
    if (tm && !r)
        *oom = true;
    if (r) {
        r->id = ++jm->next_log_request;
        r->tm_seq = tm->seq;
        r->max_bytes = max_bytes;
        r->deadline_ns = weir_now_ns() + (int64_t)WEIR_JM_LOG_TIMEOUT_MS * 1000000;
        r->conn = conn;
        r->next = jm->logreqs;
        jm->logreqs = r;
        weir_msg_t m = {.type = WEIR_MSG_LOG_REQUEST, .request_id = r->id, .max_bytes = max_bytes};
        weir__jm_send_locked(jm, tm, &m);
    }
    pthread_mutex_unlock(&jm->mu);
    if (r)
        weir__jm_wake(jm);
    return r;
}

void weir__jm_log_on_answer_locked(weir_jobmanager_t *jm, const weir_jm_tm_t *tm, weir_msg_t *m) {
    weir_jm_logreq_t *r = jm->logreqs;
    while (r && r->id != m->request_id)
        r = r->next;
    if (!r || r->status != WEIR_JM_LOG_WAITING || r->tm_seq != tm->seq) {
        WEIR_DEBUG(COMP, "LOG %llu from task manager %s answers no waiting request: dropped",
                   (unsigned long long)m->request_id, tm->id);
        return;
    }
    /* At most max_bytes, from a line start (a task manager that sent more is cut here). */
    size_t off = 0, len = m->log_tail_len;
    if (len > r->max_bytes) {
        off = len - r->max_bytes;
        if (m->log_tail[off - 1] != '\n') {
            const uint8_t *nl = memchr(m->log_tail + off, '\n', len - off);
            off = nl ? (size_t)(nl - m->log_tail) + 1 : len;
        }
    }
    r->len = len - off;
    r->data = malloc(r->len ? r->len : 1);
    if (r->data)
        memcpy(r->data, m->log_tail + off, r->len);
    else
        r->len = 0;
    r->status = WEIR_JM_LOG_ANSWERED;
}

void weir__jm_log_tick_locked(weir_jobmanager_t *jm, int64_t now_ns) {
    for (weir_jm_logreq_t *r = jm->logreqs; r; r = r->next) {
        if (r->status != WEIR_JM_LOG_WAITING)
            continue;
        if (!weir__jm_find_tm_seq_locked(jm, r->tm_seq))
            r->status = WEIR_JM_LOG_GONE;
        else if (now_ns >= r->deadline_ns)
            r->status = WEIR_JM_LOG_TIMED_OUT;
    }
}

void weir__jm_log_resume(weir_jobmanager_t *jm, bool all) {
    int64_t give_up = weir_now_ns() + 1000000000; /* all: a handler between begin and suspend */
    for (;;) {
        struct MHD_Connection *conn = NULL;
        bool unsuspended = false;
        pthread_mutex_lock(&jm->mu);
        if (all)
            jm->log_closing = true;
        for (weir_jm_logreq_t *r = jm->logreqs; r && !conn; r = r->next) {
            if (all && r->status == WEIR_JM_LOG_WAITING)
                r->status = WEIR_JM_LOG_GONE;
            if (r->status != WEIR_JM_LOG_WAITING && r->suspended && !r->resumed) {
                r->resumed = true;
                conn = r->conn;
            }
            unsuspended |= !r->suspended;
        }
        pthread_mutex_unlock(&jm->mu);
        if (conn) {
            MHD_resume_connection(conn);
            continue;
        }
        if (!all || !unsuspended || weir_now_ns() > give_up)
            return;
        weir_sleep_ns(1000000); /* the handler marks it suspended right after begin */
    }
}

void weir__jm_log_suspended(weir_jobmanager_t *jm, weir_jm_logreq_t *r) {
    pthread_mutex_lock(&jm->mu);
    r->suspended = true;
    pthread_mutex_unlock(&jm->mu);
}

weir_jm_log_status_t weir__jm_log_result(weir_jobmanager_t *jm, weir_jm_logreq_t *r,
                                         const uint8_t **data, size_t *len) {
    pthread_mutex_lock(&jm->mu);
    weir_jm_log_status_t st = r->status;
    *data = r->data;
    *len = r->len;
    pthread_mutex_unlock(&jm->mu);
    return st;
}

void weir__jm_log_finish(weir_jobmanager_t *jm, weir_jm_logreq_t *r) {
    if (!r)
        return;
    pthread_mutex_lock(&jm->mu);
    for (weir_jm_logreq_t **p = &jm->logreqs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&jm->mu);
    free(r->data);
    free(r);
}
