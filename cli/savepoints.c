/* The savepoint commands of `weir` (docs/cli.md):
 * - savepoint JOBID [TARGET_DIR]: POST /jobs/<id>/savepoints, then polls the request;
 * - stop [--savepointPath DIR] JOBID: POST /jobs/<id>/stop, then polls the same way (the request
 *   completes once the savepoint is written and the job is FINISHED);
 * - validate -s PATH [-p N] [-n] PLUGIN.so [args]: no cluster: builds the job graph locally,
 *   reads the savepoint (savepoint/read.h) and prints the restore plan (savepoint/plan.h) the job
 *   manager would make for `weir run -s` (claim = false, as a restore of a savepoint).
 *
 * Output lines and exit codes are a contract: "Triggering savepoint for job <id>." / "Suspending
 * job <id>.", while waiting at most one line per second "Waiting for response... (<k>/<n>
 * subtasks acknowledged, <size> written)", then "Savepoint completed. Path: <path>" (exit 0) or
 * "weir: savepoint failed: <cause>" on stderr (exit 1).
 *
 * Invariants: a path sent to the job manager is absolute (its working directory is another);
 * a request id goes into a URL path only when it is hex. Threading: single-threaded; Ctrl-C while
 * waiting exits 130 and the savepoint goes on in the cluster.
 */
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/err.h"
#include "common/util.h"
#include "savepoint/metadata.h"
#include "savepoint/plan.h"
#include "savepoint/read.h"

#define NS_PER_S 1000000000LL
/* a progress line at most this often, and again after this long even when nothing moved */
#define PROGRESS_MIN_NS NS_PER_S
#define PROGRESS_REPEAT_NS (10 * NS_PER_S)

void weir__cli_progress_text(char *buf, size_t cap, int64_t acked, int64_t total, int64_t bytes) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    char size[32];
    if (bytes < 1024) {
        weir_fmt(size, sizeof size, "%" PRId64 " B", bytes < 0 ? 0 : bytes);
    } else {
        double v = (double)bytes / 1024.0;
        int u = 0;
        while (v >= 1024.0 && u < 3) {
            v /= 1024.0;
            u++;
        }
        weir_fmt(size, sizeof size, "%.1f %s", v, units[u]);
    }
    weir_fmt(buf, cap, "%" PRId64 "/%" PRId64 " subtasks acknowledged, %s written", acked, total,
             size);
}

/* The first line of @p s (a cause must stay one line) into @p out. */
static void first_line(const char *s, char *out, size_t cap) {
    size_t n = strcspn(s, "\r\n");
    weir_fmt(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s); /* weir_fmt truncates safely */
}

/* Polls GET /jobs/<jobid>/savepoints/<rid> until the request completes; prints the progress
 * lines and the final line. @p t0 is when the request was sent. @returns the exit code. */
static int wait_savepoint(weir_client_t *client, const char *jobid, const char *rid, int64_t t0) {
    weir__cli_exit_on_sigint();
    char path[320], last[160] = "", line[160];
    weir_fmt(path, sizeof path, "/jobs/%s/savepoints/%s", jobid, rid);
    int64_t last_print = 0;
    for (;;) {
        json_t *j = NULL;
        if (weir__cli_poll_get(client, path, &j))
            return 1;
        const char *status = json_string_value(json_object_get(json_object_get(j, "status"), "id"));
        json_t *prog = json_object_get(j, "progress");
        if (status && !strcmp(status, "IN_PROGRESS")) {
            if (json_is_object(prog))
                weir__cli_progress_text(line, sizeof line,
                                        json_integer_value(json_object_get(prog, "acknowledged")),
                                        json_integer_value(json_object_get(prog, "total")),
                                        json_integer_value(json_object_get(prog, "state_size")));
            else
                line[0] = '\0';
            int64_t now = weir_now_ns();
            bool due = last_print == 0 || now - last_print >= PROGRESS_MIN_NS;
            if (due && (last_print == 0 || strcmp(line, last) != 0 ||
                        now - last_print >= PROGRESS_REPEAT_NS)) {
                if (line[0])
                    printf("Waiting for response... (%s)\n", line);
                else
                    printf("Waiting for response...\n");
                fflush(stdout);
                weir_fmt(last, sizeof last, "%s", line);
                last_print = now;
            }
            json_decref(j);
            weir_sleep_ns(WEIR_CLI_POLL_INTERVAL_NS);
            continue;
        }
        int rc = 1;
        json_t *op = json_object_get(j, "operation");
        const char *location = json_string_value(json_object_get(op, "location"));
        json_t *failure = json_object_get(op, "failure-cause");
        if (status && !strcmp(status, "COMPLETED") && location && !failure) {
            if (json_is_object(prog)) {
                char size[160];
                weir__cli_progress_text(size, sizeof size,
                                        json_integer_value(json_object_get(prog, "acknowledged")),
                                        json_integer_value(json_object_get(prog, "total")),
                                        json_integer_value(json_object_get(prog, "state_size")));
                json_t *id = json_object_get(j, "checkpoint");
                char idtext[32] = "";
                if (json_is_integer(id))
                    weir_fmt(idtext, sizeof idtext, " %" PRId64, (int64_t)json_integer_value(id));
                printf("Savepoint%s took %.1f s (%s).\n", idtext,
                       (double)(weir_now_ns() - t0) / 1e9, size);
            }
            printf("Savepoint completed. Path: %s\n", location);
            rc = 0;
        } else if (status && (!strcmp(status, "COMPLETED") || !strcmp(status, "FAILED"))) {
            const char *cause = json_string_value(json_object_get(failure, "stack-trace"));
            if (!cause || !*cause)
                cause = json_string_value(json_object_get(failure, "class"));
            char one[1024];
            first_line(cause && *cause ? cause : "the job manager gave no cause", one, sizeof one);
            fprintf(stderr, "weir: savepoint failed: %s\n", one);
        } else {
            fprintf(stderr,
                    "weir: the job manager at %s answered GET %s without a known status.id "
                    "(IN_PROGRESS or COMPLETED): is it a weir job manager of this version?\n",
                    weir_client_address(client), path);
        }
        json_decref(j);
        return rc;
    }
}

/* Sends @p body to POST @p path (a savepoint or stop request of job @p jobid), then waits for
 * the request it answers with. @returns the exit code. */
static int trigger_and_wait(weir__cli_t *c, const char *jobid, const char *path, json_t *body) {
    int rc = 1;
    char err[768];
    json_t *ans = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        abort(); /* jansson out of memory on a few members */
    weir_client_t *client = weir__cli_client(c);
    int64_t t0 = weir_now_ns();
    if (weir_client_request(client, "POST", path, text, strlen(text), "application/json", &ans, err,
                            sizeof err)) {
        fprintf(stderr, "weir: %s\n", err);
        goto done;
    }
    const char *rid = json_string_value(json_object_get(ans, "request-id"));
    if (!rid || !*rid || strlen(rid) > 64 ||
        strspn(rid, "0123456789abcdefABCDEF-") != strlen(rid)) {
        fprintf(stderr, "weir: the job manager at %s did not answer POST %s with a request-id\n",
                weir_client_address(client), path);
        goto done;
    }
    rc = wait_savepoint(client, jobid, rid, t0);
done:
    json_decref(ans);
    free(text);
    weir_client_destroy(&client);
    return rc;
}

/* The JSON string of directory @p dir made absolute, or JSON null when @p dir is NULL. NULL after
 * printing the error. */
static json_t *target_json(const char *dir, bool *ok) {
    char abs[PATH_MAX];
    *ok = true;
    if (!dir)
        return json_null();
    if (weir__cli_abs_path(dir, abs, sizeof abs)) {
        *ok = false;
        return NULL;
    }
    json_t *s = json_string(abs);
    if (!s) {
        fprintf(stderr, "weir: the savepoint directory '%s' must be valid UTF-8\n", dir);
        *ok = false;
    }
    return s;
}

/* POST /jobs/<jobid>/<endpoint> with {<target_key>: dir|null, <flag_key>: false} after printing
 * @p headline, then waits for the request (savepoint and stop differ only in these). */
static int request_savepoint(weir__cli_t *c, const char *dir, const char *endpoint,
                             const char *target_key, const char *flag_key, const char *headline) {
    const char *jobid = c->pos[0];
    if (weir__cli_check_jobid(jobid))
        return 1;
    bool ok;
    json_t *target = target_json(dir, &ok);
    if (!ok)
        return 1;
    json_t *body = json_pack("{s:o, s:b}", target_key, target, flag_key, 0);
    char path[256];
    weir_fmt(path, sizeof path, "/jobs/%s/%s", jobid, endpoint);
    printf("%s %s.\n", headline, jobid);
    fflush(stdout);
    int rc = trigger_and_wait(c, jobid, path, body);
    json_decref(body);
    return rc;
}

int weir__cli_savepoint(weir__cli_t *c) {
    return request_savepoint(c, c->n_pos > 1 ? c->pos[1] : NULL, "savepoints", "target-directory",
                             "cancel-job", "Triggering savepoint for job");
}

int weir__cli_stop(weir__cli_t *c) {
    return request_savepoint(c, c->stop_target, "stop", "targetDirectory", "drain",
                             "Suspending job");
}

int weir__cli_validate(weir__cli_t *c) {
    weir_plugin_t *plugin = NULL;
    weir_job_t *job = NULL;
    weir_restore_plan_t *plan = NULL;
    weir_ckpt_meta_t meta = {0};
    weir_storage_env_t *env = NULL;
    char base[WEIR_STORAGE_URI_MAX], err[8192];
    int rc = 1;
    /* the savepoint may be on S3: the storage settings (s3.*) of -c/-D like the cluster's */
    if (!(env = weir_storage_env_new(c->cfg, err, sizeof err))) {
        fprintf(stderr, "weir: %s\n", err);
        return 2;
    }
    if (weir__cli_build_graph(c, &plugin, &job))
        goto done;
    if (weir_savepoint_read(env, c->savepoint_path, &meta, base, sizeof base, err, sizeof err) !=
        0) {
        fprintf(stderr, "weir: %s\n", err);
        goto done;
    }
    /* what `weir run -s` asks of the job manager: a savepoint is never claimed (NO_CLAIM) */
    int built = weir_restore_plan_build(&meta, NULL, job, base, false, c->allow_non_restored, &plan,
                                        err, sizeof err);
    if (plan)
        weir_restore_plan_report(plan, stdout);
    fflush(stdout);
    if (built != 0) {
        fprintf(stderr, "weir: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    weir_restore_plan_free(&plan);
    weir_ckpt_meta_clear(&meta);
    weir_graph_destroy(&job);
    weir_plugin_close(&plugin);
    weir_storage_env_free(&env);
    return rc;
}
