/* Job plugin loading: checks the file (exists, ELF), dlopens it with RTLD_NOW | RTLD_LOCAL, finds
 * and checks its descriptor (magic, ABI version, define function), and runs define() to build a
 * finalized graph. Every failure is one line naming the file and the fix.
 *
 * Invariants: a weir_plugin_t holds an open dlopen handle and a descriptor pointer into it; both
 * stay valid until weir_plugin_close(). Graphs built from a plugin hold function pointers into
 * the library: destroy them before closing the plugin.
 *
 * Threading: no shared state; a handle may be used by one thread at a time (dlopen/dlsym/dlerror
 * are thread-safe in glibc, dlerror's message is per thread).
 */
#include "runtime/graph/plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"

struct weir_plugin {
    void *handle;
    const weir_plugin_descriptor_t *desc;
    char *path;
};

weir_plugin_t *weir_plugin_open(const char *path, char *errstr, size_t errlen) {
    void *handle = NULL;
    weir_plugin_t *p = NULL;
    char *dlpath = NULL;
    if (!path || !*path) {
        snprintf(errstr, errlen, "no plugin given: pass the path of a job's .so file");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            snprintf(errstr, errlen, "plugin '%s' not found", path);
        else
            snprintf(errstr, errlen, "plugin '%s' cannot be read: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(errstr, errlen,
                 "'%s' is not a shared library (not a regular file): build the job with -shared "
                 "-fPIC",
                 path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errlen, "plugin '%s' cannot be read: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, sizeof(magic), f);
    fclose(f);
    if (got != sizeof(magic) || memcmp(magic, "\177ELF", 4) != 0) {
        snprintf(errstr, errlen,
                 "'%s' is not a shared library (no ELF header): build the job with -shared -fPIC",
                 path);
        return NULL;
    }

    /* dlopen searches the library path for names without a '/': make it a path. */
    size_t len = strlen(path);
    dlpath = malloc(len + 3);
    if (!dlpath)
        goto oom;
    if (strchr(path, '/'))
        memcpy(dlpath, path, len + 1);
    else
        snprintf(dlpath, len + 3, "./%s", path);

    dlerror();
    handle = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *e = dlerror();
        snprintf(errstr, errlen, "'%s' could not be loaded: %s", path, e ? e : "unknown error");
        goto fail;
    }
    dlerror();
    const weir_plugin_descriptor_t *desc = dlsym(handle, WEIR_PLUGIN_SYMBOL);
    if (desc) {
        /* The symbol must be the plugin's own, not one of its dependencies' (libweir.so has a
         * function of the same name). */
        struct link_map *lm = NULL;
        Dl_info info;
        if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && dladdr(desc, &info) != 0 &&
            info.dli_fname && lm->l_name && strcmp(info.dli_fname, lm->l_name) != 0)
            desc = NULL;
    }
    if (!desc) {
        snprintf(errstr, errlen,
                 "'%s' exports no " WEIR_PLUGIN_SYMBOL
                 ": declare one with WEIR_PLUGIN(name, description, define)",
                 path);
        goto fail;
    }
    if (desc->magic != WEIR_PLUGIN_MAGIC) {
        snprintf(errstr, errlen,
                 "'%s' has a corrupt " WEIR_PLUGIN_SYMBOL
                 " (magic 0x%08x, expected 0x%08x): declare it with WEIR_PLUGIN(name, "
                 "description, define)",
                 path, desc->magic, WEIR_PLUGIN_MAGIC);
        goto fail;
    }
    if (desc->abi_version != WEIR_ABI_VERSION) {
        snprintf(errstr, errlen,
                 "'%s' was built for weir ABI %u but this weir speaks ABI %u: rebuild it against "
                 "this include/weir/weir.h",
                 path, desc->abi_version, WEIR_ABI_VERSION);
        goto fail;
    }
    if (!desc->define) {
        snprintf(errstr, errlen,
                 "'%s' has no define function: pass one to WEIR_PLUGIN(name, description, "
                 "define)",
                 path);
        goto fail;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto oom;
    p->handle = handle;
    p->desc = desc;
    p->path = dlpath;
    return p;
oom:
    snprintf(errstr, errlen, "'%s' could not be loaded: out of memory", path);
fail:
    if (handle)
        dlclose(handle);
    free(dlpath);
    return NULL;
}

void weir_plugin_close(weir_plugin_t **plugin) {
    if (!plugin || !*plugin)
        return;
    weir_plugin_t *p = *plugin;
    if (p->handle)
        dlclose(p->handle);
    free(p->path);
    free(p);
    *plugin = NULL;
}

const weir_plugin_descriptor_t *weir_plugin_desc(const weir_plugin_t *plugin) {
    return plugin ? plugin->desc : NULL;
}

weir_job_t *weir_plugin_build(const weir_plugin_t *plugin, int argc, char **argv,
                              uint32_t default_parallelism, char *errstr, size_t errlen) {
    if (!plugin) {
        snprintf(errstr, errlen, "no plugin loaded");
        return NULL;
    }
    const weir_plugin_descriptor_t *d = plugin->desc;
    weir_job_t *job = weir_graph_new(d->name && *d->name ? d->name : "job",
                                     default_parallelism ? default_parallelism : 1);
    if (argc > 0 && argv) { /* kept for weir_job_args (user functions read them at run time) */
        job->argv = weir_job_alloc(job, ((size_t)argc + 1) * sizeof *job->argv);
        for (int i = 0; i < argc; i++)
            job->argv[i] = weir_job_strdup(job, argv[i] ? argv[i] : "");
        job->argc = argc;
    }
    int rc = d->define(job, argc, argv);
    if (job->failed) {
        snprintf(errstr, errlen, "%s", job->error);
        goto fail;
    }
    if (rc != 0) {
        snprintf(errstr, errlen, "define() of job '%s' returned %d", job->name, rc);
        goto fail;
    }
    if (weir_graph_finalize(job, errstr, errlen) != 0)
        goto fail;
    return job;
fail:
    weir_graph_destroy(&job);
    return NULL;
}
