/* Loading job plugins: dlopen a shared library, find and check its descriptor (magic, ABI
 * version, define function), and run define() to build a graph. One loaded plugin per
 * weir_plugin_t; the library stays loaded until weir_plugin_close(). Thread-safe per handle. */
#ifndef WEIR_RUNTIME_PLUGIN_H
#define WEIR_RUNTIME_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/graph/graph.h"

typedef struct weir_plugin weir_plugin_t;

/**
 * Opens the plugin at @p path (a name without '/' is taken relative to the working directory,
 * never searched on the library path). Errors are one line naming the file and the fix:
 *  - "plugin 'x.so' not found"
 *  - "'x.so' is not a shared library (no ELF header): build the job with -shared -fPIC"
 *  - "'x.so' could not be loaded: <dlerror>" (e.g. an unresolved symbol)
 *  - "'x.so' exports no weir_plugin_descriptor: declare one with WEIR_PLUGIN(...)"
 *  - "'x.so' was built for weir ABI 7 but this weir speaks ABI 1: rebuild it against ..."
 *  - a wrong magic number or a NULL define function
 * @returns NULL with errstr set on error.
 */
weir_plugin_t *weir_plugin_open(const char *path, char *errstr, size_t errlen);
void weir_plugin_close(weir_plugin_t **plugin);
const weir_plugin_descriptor_t *weir_plugin_desc(const weir_plugin_t *plugin);

/**
 * Runs define(argc, argv) on a new graph with the given default parallelism and finalizes it.
 * argv[0] is the plugin path by convention. @returns the graph, or NULL with errstr set (the
 * plugin's weir_job_error text, or the finalize error).
 */
weir_job_t *weir_plugin_build(const weir_plugin_t *plugin, int argc, char **argv,
                              uint32_t default_parallelism, char *errstr, size_t errlen);

#endif
