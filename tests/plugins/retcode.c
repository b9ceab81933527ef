/* Test plugin: define() returns non-zero without calling weir_job_error(). */
#include "weir/weir.h"

static int define(weir_job_t *job, int argc, char **argv) {
    (void)job;
    (void)argc;
    (void)argv;
    return 3;
}

WEIR_PLUGIN("retcode", "a job whose define() returns 3", define);
