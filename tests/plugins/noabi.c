/* Test plugin: a descriptor claiming ABI version 999 (built against a future weir.h). */
#include "weir/weir.h"

static int define(weir_job_t *job, int argc, char **argv) {
    (void)job;
    (void)argc;
    (void)argv;
    return 0;
}

__attribute__((visibility("default"))) const weir_plugin_descriptor_t weir_plugin_descriptor = {
    WEIR_PLUGIN_MAGIC, 999u, "noabi", "ABI 999", define};
