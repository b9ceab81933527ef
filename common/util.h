/* Small utilities shared by every process: clocks, ids, hashing, files, size/duration parsing.
 * Stateless and thread-safe. */
#ifndef WEIR_COMMON_UTIL_H
#define WEIR_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Monotonic clock in nanoseconds. */
int64_t weir_now_ns(void);
/** Names the calling thread (printf-style; cut to the 15 characters Linux keeps) so that `top -H`,
 * `perf` and /proc/<pid>/task/<tid>/comm show it, e.g. "weir-net", "weir-task-1.0". */
void weir_thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Wall clock in milliseconds since the epoch. */
int64_t weir_wall_ms(void);
/** Sleeps for @p ns nanoseconds (restarts on EINTR). */
void weir_sleep_ns(int64_t ns);

/** Fills @p buf with cryptographically random bytes. @returns 0 or WEIR_EIO. */
int weir_random_bytes(void *buf, size_t len);
/** Writes 2*len lowercase hex digits and a NUL into @p out. */
void weir_hex_encode(const void *data, size_t len, char *out);
/** Parses 2*len hex digits into @p out. @returns 0 or WEIR_EINVAL. */
int weir_hex_decode(const char *hex, void *out, size_t len);
/** A new random id of 32 lowercase hex digits (16 bytes), NUL-terminated in @p out[33]. */
int weir_new_id(char out[33]);

/** SHA-256 of a buffer as 64 lowercase hex digits + NUL. */
void weir_sha256_hex(const void *data, size_t len, char out[65]);

/** Reads a whole file into a malloc'd buffer (NUL-terminated; *len excludes the NUL).
 * @returns 0, WEIR_ENOTFOUND or WEIR_EIO (errno kept). */
int weir_read_file(const char *path, uint8_t **data, size_t *len);
/** Writes all @p len bytes to @p fd (retrying short writes and EINTR). @returns 0, or -1 with
 * errno. */
int weir_write_all(int fd, const void *data, size_t len);
/** Writes a file atomically: temp file in the same directory, fsync, rename, fsync dir. */
int weir_write_file_atomic(const char *path, const void *data, size_t len);
/** fsyncs directory @p dir, making the creations, renames and removals in it durable.
 * @returns 0 or WEIR_EIO (errno kept). */
int weir_fsync_dir(const char *dir);
/** mkdir -p. @returns 0 or WEIR_EIO. */
int weir_mkdirs(const char *path);
/** rm -rf (no error when missing). @returns 0 or WEIR_EIO. */
int weir_rmtree(const char *path);

/** Parses "500ms", "10s", "2min", "1h", "250" (ms). @returns 0 or WEIR_EINVAL. */
int weir_parse_duration_ms(const char *s, int64_t *out_ms);
/** Parses "32kb", "64mb", "1gb", "4096" (bytes); suffixes case-insensitive (k, kb, kib...). */
int weir_parse_bytes(const char *s, uint64_t *out);
/** Parses "true"/"false"/"1"/"0"/"yes"/"no". */
int weir_parse_bool(const char *s, bool *out);
/** Parses a decimal integer in [min, max]. */
int weir_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* Memory. weir aborts on an allocation failure where the memory is small and bounded by
 * configuration (control structures, rings bounded by credits); the x-functions say so at the
 * call. */

/** calloc that aborts on failure; n == 0 allocates one element. */
void *weir_xcalloc(size_t n, size_t size);
/** strdup that aborts on failure; NULL gives "". */
char *weir_xstrdup(const char *s);
/** Makes room for @p need elements of @p elem bytes in the array *arr of capacity *cap: doubles
 * the capacity (at least @p min_cap) until it fits, keeping the contents. @returns 0 or
 * WEIR_ENOMEM (the array and *cap unchanged). */
int weir_array_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t min_cap);
/** Doubles a full ring buffer of *cap elements of @p elem bytes (at least @p min_cap), moving
 * its @p len elements starting at index *head to the start of the new array; *head becomes 0.
 * A ring of capacity 2^k stays a power of two. Aborts on allocation failure. */
void weir_ring_grow(void **ring, size_t elem, size_t *head, size_t len, size_t *cap,
                    size_t min_cap);

/** Writes a one-line message into @p errstr (when non-NULL) and @returns @p code, for
 * `return weir_errf(errstr, errlen, WEIR_EINVAL, "...", ...);` in parsers and validators. */
int weir_errf(char *errstr, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** snprintf that never overflows and always terminates; returns what vsnprintf returned. */
int weir_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
