/* Test plugin: a descriptor whose magic number is wrong (not made by WEIR_PLUGIN). */
#include "weir/weir.h"

static int define(weir_job_t *job, int argc, char **argv) {
    (void)job;
    (void)argc;
    (void)argv;
    return 0;
}

__attribute__((visibility("default"))) const weir_plugin_descriptor_t weir_plugin_descriptor = {
    0x12345678u, WEIR_ABI_VERSION, "badmagic", "wrong magic", define};
