/* Test plugin: a shared library that exports no weir_plugin_descriptor. */
#include "weir/weir.h"

__attribute__((visibility("default"))) int not_a_weir_job(int x);
int not_a_weir_job(int x) {
    return x + 1;
}
