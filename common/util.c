/* Owns small process-wide utilities: clocks, random ids, hex, SHA-256 (OpenSSL EVP), whole-file
 * reads, atomic file writes (temp + fsync + rename + fsync dir), mkdir -p, rm -rf (nftw) and the
 * parsing of durations, byte sizes, booleans and integers, and naming the calling thread.
 * Invariants: every function is stateless; nothing here keeps global mutable state.
 * Threading: all functions are safe to call from any thread. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

void weir_thread_name(const char *fmt, ...) {
    char name[16]; /* the kernel keeps 15 characters and the NUL */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    pthread_setname_np(pthread_self(), name);
}

int64_t weir_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t weir_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

void weir_sleep_ns(int64_t ns) {
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int weir_random_bytes(void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return WEIR_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void weir_hex_encode(const void *data, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int weir_hex_decode(const char *hex, void *out, size_t len) {
    uint8_t *p = out;
    for (size_t i = 0; i < len; i++) {
        if (!hex[2 * i])
            return WEIR_EINVAL;
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return WEIR_EINVAL;
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int weir_new_id(char out[33]) {
    uint8_t raw[16];
    int rc = weir_random_bytes(raw, sizeof raw);
    if (rc < 0) {
        out[0] = '\0';
        return rc;
    }
    weir_hex_encode(raw, sizeof raw, out);
    return 0;
}

void weir_sha256_hex(const void *data, size_t len, char out[65]) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        /* Only on OOM inside OpenSSL: never return a plausible digest. */
        abort();
    }
    weir_hex_encode(md, 32, out);
}

int weir_read_file(const char *path, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf)
        goto fail;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb)
                goto fail;
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
fail : {
    int saved = errno;
    free(buf);
    close(fd);
    errno = saved;
    return WEIR_EIO;
}
}

int weir_write_all(int fd, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int weir_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return WEIR_EIO;
    int rc = fsync(fd) == 0 ? 0 : WEIR_EIO;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int weir_write_file_atomic(const char *path, const void *data, size_t len) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    char *dir = strdup(path);
    int fd = -1;
    if (!tmp || !dir)
        goto fail;
    uint8_t rnd[6];
    char rhex[13];
    if (weir_random_bytes(rnd, sizeof rnd) < 0)
        goto fail;
    weir_hex_encode(rnd, sizeof rnd, rhex);
    snprintf(tmp, plen + 32, "%s.tmp.%s", path, rhex);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    if (weir_write_all(fd, data, len) < 0 || fsync(fd) < 0)
        goto fail_unlink;
    if (close(fd) < 0) {
        fd = -1;
        goto fail_unlink;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail_unlink;
    /* fsync the directory so that the rename itself is durable. */
    char *slash = strrchr(dir, '/');
    const char *dpath = ".";
    if (slash == dir)
        dpath = "/";
    else if (slash) {
        *slash = '\0';
        dpath = dir;
    }
    if (weir_fsync_dir(dpath) < 0)
        goto fail;
    free(tmp);
    free(dir);
    return 0;
fail_unlink : {
    int saved = errno;
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
    errno = saved;
}
fail : {
    int saved = errno;
    if (fd >= 0)
        close(fd);
    free(tmp);
    free(dir);
    errno = saved;
    return WEIR_EIO;
}
}

int weir_mkdirs(const char *path) {
    size_t n = strlen(path);
    if (n == 0)
        return WEIR_EINVAL;
    char *p = strdup(path);
    if (!p)
        return WEIR_ENOMEM;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                int saved = errno;
                free(p);
                errno = saved;
                return WEIR_EIO;
            }
            p[i] = c;
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return WEIR_EIO;
    return 0;
}

static int rm_entry(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf) {
    (void)sb;
    (void)ftwbuf;
    int rc = (typeflag == FTW_DP) ? rmdir(fpath) : unlink(fpath);
    if (rc < 0 && errno != ENOENT)
        return -1;
    return 0;
}

int weir_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : WEIR_EIO;
    if (!S_ISDIR(st.st_mode))
        return (unlink(path) < 0 && errno != ENOENT) ? WEIR_EIO : 0;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return WEIR_EIO;
    return 0;
}

/* Splits "  123 unit " into a non-negative integer and a unit; @returns 0 or WEIR_EINVAL. */
static int split_number_unit(const char *s, uint64_t *num, char *unit, size_t unitcap) {
    if (!s)
        return WEIR_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return WEIR_EINVAL;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return WEIR_EINVAL;
        v = v * 10 + d;
        s++;
    }
    while (isspace((unsigned char)*s))
        s++;
    size_t n = 0;
    while (*s && !isspace((unsigned char)*s)) {
        if (n + 1 >= unitcap)
            return WEIR_EINVAL;
        unit[n++] = (char)tolower((unsigned char)*s);
        s++;
    }
    unit[n] = '\0';
    while (isspace((unsigned char)*s))
        s++;
    if (*s)
        return WEIR_EINVAL;
    *num = v;
    return 0;
}

int weir_parse_duration_ms(const char *s, int64_t *out_ms) {
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        {"", 1},
        {"ms", 1},
        {"milli", 1},
        {"millis", 1},
        {"millisecond", 1},
        {"milliseconds", 1},
        {"s", 1000},
        {"sec", 1000},
        {"secs", 1000},
        {"second", 1000},
        {"seconds", 1000},
        {"m", 60000},
        {"min", 60000},
        {"mins", 60000},
        {"minute", 60000},
        {"minutes", 60000},
        {"h", 3600000},
        {"hour", 3600000},
        {"hours", 3600000},
        {"d", 86400000},
        {"day", 86400000},
        {"days", 86400000},
    };
    uint64_t v;
    char unit[16];
    if (split_number_unit(s, &v, unit, sizeof unit) < 0)
        return WEIR_EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(unit, units[i].unit)) {
            if (v > (uint64_t)INT64_MAX / units[i].ms)
                return WEIR_EINVAL;
            *out_ms = (int64_t)(v * units[i].ms);
            return 0;
        }
    }
    return WEIR_EINVAL;
}

int weir_parse_bytes(const char *s, uint64_t *out) {
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"bytes", 1},
        {"k", 1ULL << 10},
        {"kb", 1ULL << 10},
        {"kib", 1ULL << 10},
        {"kibibytes", 1ULL << 10},
        {"m", 1ULL << 20},
        {"mb", 1ULL << 20},
        {"mib", 1ULL << 20},
        {"mebibytes", 1ULL << 20},
        {"g", 1ULL << 30},
        {"gb", 1ULL << 30},
        {"gib", 1ULL << 30},
        {"gibibytes", 1ULL << 30},
        {"t", 1ULL << 40},
        {"tb", 1ULL << 40},
        {"tib", 1ULL << 40},
        {"tebibytes", 1ULL << 40},
    };
    uint64_t v;
    char unit[16];
    if (split_number_unit(s, &v, unit, sizeof unit) < 0)
        return WEIR_EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(unit, units[i].unit)) {
            if (v > UINT64_MAX / units[i].mult)
                return WEIR_EINVAL;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return WEIR_EINVAL;
}

int weir_parse_bool(const char *s, bool *out) {
    if (!s)
        return WEIR_EINVAL;
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return WEIR_EINVAL;
}

int weir_parse_int(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s)
        return WEIR_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return WEIR_EINVAL;
    /* strtoll accepts leading '+'/'-' and stops at the first non-digit. */
    if (!(isdigit((unsigned char)*s) || ((*s == '-' || *s == '+') && isdigit((unsigned char)s[1]))))
        return WEIR_EINVAL;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return WEIR_EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return WEIR_EINVAL;
    if (v < min || v > max)
        return WEIR_EINVAL;
    *out = v;
    return 0;
}

int weir_errf(char *errstr, size_t errlen, int code, const char *fmt, ...) {
    if (errstr && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int weir_fmt(char *buf, size_t cap, const char *fmt, ...) {
    if (cap == 0)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[0] = '\0';
    return n;
}

void *weir_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

char *weir_xstrdup(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p)
        abort();
    return p;
}

int weir_array_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t min_cap) {
    if (need <= *cap && *arr)
        return 0;
    size_t ncap = *cap ? *cap : (min_cap ? min_cap : 1);
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return WEIR_ENOMEM;
        ncap *= 2;
    }
    if (elem && ncap > SIZE_MAX / elem)
        return WEIR_ENOMEM;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return WEIR_ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

void weir_ring_grow(void **ring, size_t elem, size_t *head, size_t len, size_t *cap,
                    size_t min_cap) {
    size_t ncap = *cap ? *cap * 2 : min_cap;
    char *n = malloc(ncap * elem);
    if (!n)
        abort();
    for (size_t i = 0; i < len; i++)
        memcpy(n + i * elem, (char *)*ring + ((*head + i) % *cap) * elem, elem);
    free(*ring);
    *ring = n;
    *cap = ncap;
    *head = 0;
}
