/* Helpers shared by the libFuzzer targets of tests/fuzz (README.md there): seed files and
 * property checks. Header-only (each target is one .c file plus this).
 *
 * Seeds: a target writes valid inputs (made with the module's own encoder or builder, so they
 * follow the current format) from LLVMFuzzerInitialize, which libFuzzer calls before it reads the
 * corpus directories. They go to $WEIR_FUZZ_SEED_DIR (run.sh sets it to the fresh corpus
 * directory); without it nothing is written, so running a target on one crash file reproduces
 * exactly that input.
 *
 * Checks: WEIR_FUZZ_CHECK(cond, fmt, ...) prints one line "fuzz property failed: ..." and aborts,
 * which libFuzzer reports as a crash and saves the input as an artifact.
 *
 * Threading: called from libFuzzer's thread only. */
#ifndef WEIR_TESTS_FUZZ_UTIL_H
#define WEIR_TESTS_FUZZ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define WEIR_FUZZ_CHECK(cond, ...)                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/** Writes one seed input `<$WEIR_FUZZ_SEED_DIR>/seed-<name>` (no-op without the variable).
 * Aborts with a message when the file cannot be written: a run without its seeds would pass while
 * fuzzing far less. */
static inline void weir_fuzz_seed(const char *name, const void *data, size_t len) {
    const char *dir = getenv("WEIR_FUZZ_SEED_DIR");
    if (!dir || !*dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "cannot write seed %s (check WEIR_FUZZ_SEED_DIR)\n", path);
        abort();
    }
}

/** weir_fuzz_seed with a printf-formatted name. */
static inline void weir_fuzz_seedf(const void *data, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void weir_fuzz_seedf(const void *data, size_t len, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    weir_fuzz_seed(name, data, len);
}

#endif
