/* Test plugin: define() rejects its arguments with weir_job_error(). */
#include "weir/weir.h"

static int define(weir_job_t *job, int argc, char **argv) {
    (void)argv;
    weir_job_error(job, "usage: failing INPUT OUTPUT (got %d arguments)", argc - 1);
    return 1;
}

WEIR_PLUGIN("failing", "a job whose define() fails", define);
