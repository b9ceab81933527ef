/* Owns each job's failure history (GET /jobs/{id}/exceptions, Flink 1.15+'s exceptionHistory):
 * one entry per failure that failed a job over or failed it (a task failing, a task manager lost,
 * too many failed checkpoints, a failed stop, no slots, a restore that cannot be read), with the
 * failure's kind (exceptionName), its one line (stacktrace), the time, and the task and task
 * manager it names when it names one.
 *
 * Invariants: at most WEIR_JM_EXCEPTION_HISTORY entries per job, a ring in the job (the oldest is
 * dropped and freed when a new one comes); exc_total counts every failure ever recorded, so
 * "truncated" says whether some were dropped; the JSON lists the newest first. An entry whose
 * strings cannot be copied keeps NULLs (shown as null): a failure is never lost to memory.
 *
 * Threading: everything runs with jm->mu held (main thread records; the REST thread reads). */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobmanager/jobmanager_int.h"

static void exception_clear(weir_jm_exception_t *e) {
    free(e->name);
    free(e->message);
    free(e->task);
    free(e->location);
    free(e->tm_id);
    memset(e, 0, sizeof *e);
}

void weir__jm_exception_add_locked(weir_jm_job_t *job, const char *name, const char *message,
                                   const weir_jm_cause_t *cause) {
    uint32_t idx;
    if (job->exc_len < WEIR_JM_EXCEPTION_HISTORY) {
        idx = (job->exc_start + job->exc_len++) % WEIR_JM_EXCEPTION_HISTORY;
    } else {
        idx = job->exc_start;
        job->exc_start = (job->exc_start + 1) % WEIR_JM_EXCEPTION_HISTORY;
    }
    weir_jm_exception_t *e = &job->exc[idx];
    exception_clear(e);
    weir__jm_set_str(&e->name, name);
    weir__jm_set_str(&e->message, message);
    e->time_ms = weir_wall_ms();
    if (cause) {
        weir__jm_set_str(&e->task, cause->task);
        weir__jm_set_str(&e->location, cause->location);
        weir__jm_set_str(&e->tm_id, cause->tm_id);
    }
    job->exc_total++;
}

void weir__jm_exceptions_free(weir_jm_job_t *job) {
    for (uint32_t i = 0; i < WEIR_JM_EXCEPTION_HISTORY; i++)
        exception_clear(&job->exc[i]);
    job->exc_start = job->exc_len = 0;
}

static json_t *str_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

json_t *weir__jm_exceptions_json_locked(const weir_jm_job_t *job) {
    json_t *entries = json_array();
    for (uint32_t k = job->exc_len; k-- > 0;) {
        const weir_jm_exception_t *e = &job->exc[(job->exc_start + k) % WEIR_JM_EXCEPTION_HISTORY];
        json_array_append_new(entries,
                              json_pack("{s:o,s:o,s:I,s:o,s:o,s:o,s:{},s:[]}", "exceptionName",
                                        str_or_null(e->name), "stacktrace", str_or_null(e->message),
                                        "timestamp", (json_int_t)e->time_ms, "taskName",
                                        str_or_null(e->task), "location", str_or_null(e->location),
                                        "taskManagerId", str_or_null(e->tm_id), "failureLabels",
                                        "concurrentExceptions"));
    }
    bool truncated = job->exc_total > job->exc_len;
    /* the newest entry is also Flink's (deprecated) root exception */
    const weir_jm_exception_t *root =
        job->exc_len ? &job->exc[(job->exc_start + job->exc_len - 1) % WEIR_JM_EXCEPTION_HISTORY]
                     : NULL;
    return json_pack("{s:o,s:o,s:[],s:b,s:{s:o,s:b}}", "root-exception",
                     root ? str_or_null(root->message) : json_null(), "timestamp",
                     root ? json_integer(root->time_ms) : json_null(), "all-exceptions",
                     "truncated", truncated, "exceptionHistory", "entries", entries, "truncated",
                     truncated);
}
