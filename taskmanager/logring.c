/* Owns the task manager's log ring (taskmanager/logring.h): a byte ring of fixed capacity
 * holding the newest log lines.
 *
 * Invariants: used <= cap; the held bytes are buf[start], buf[start+1], ... (mod cap), oldest
 * first; head_at_line tells whether the oldest held byte starts a line (false once a line was cut
 * by dropping its beginning). Memory is cap bytes from creation on: the ring never allocates
 * while appending.
 *
 * Threading: every function but new/destroy takes the mutex; destroy only after the ring was
 * uninstalled from common/log.c and every logging thread was joined. */
#include "taskmanager/logring.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct weir_tm_logring {
    pthread_mutex_t mu;
    char *buf;
    size_t cap, start, used;
    bool head_at_line;
};

weir_tm_logring_t *weir__tm_logring_new(size_t cap) {
    weir_tm_logring_t *r = weir_xcalloc(1, sizeof *r);
    r->buf = weir_xcalloc(cap ? cap : 1, 1);
    r->cap = cap ? cap : 1;
    r->head_at_line = true;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void weir__tm_logring_destroy(weir_tm_logring_t **rp) {
    if (!rp || !*rp)
        return;
    weir_tm_logring_t *r = *rp;
    *rp = NULL;
    pthread_mutex_destroy(&r->mu);
    free(r->buf);
    free(r);
}

/* Copies @p n bytes from @p src into the ring at logical offset @p at (from start). */
static void put(weir_tm_logring_t *r, size_t at, const char *src, size_t n) {
    size_t pos = (r->start + at) % r->cap;
    size_t first = n < r->cap - pos ? n : r->cap - pos;
    memcpy(r->buf + pos, src, first);
    memcpy(r->buf, src + first, n - first);
}

void weir__tm_logring_append(void *ring, const char *line, size_t len) {
    weir_tm_logring_t *r = ring;
    if (!len)
        return;
    pthread_mutex_lock(&r->mu);
    if (len >= r->cap) { /* only the end of this line fits */
        /* does the byte before the kept part end a line? */
        if (len > r->cap)
            r->head_at_line = line[len - r->cap - 1] == '\n';
        else
            r->head_at_line =
                r->used ? r->buf[(r->start + r->used - 1) % r->cap] == '\n' : r->head_at_line;
        r->start = 0;
        r->used = r->cap;
        memcpy(r->buf, line + len - r->cap, r->cap);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (r->used + len > r->cap) {
        size_t drop = r->used + len - r->cap;
        r->head_at_line = r->buf[(r->start + drop - 1) % r->cap] == '\n';
        r->start = (r->start + drop) % r->cap;
        r->used -= drop;
    }
    put(r, r->used, line, len);
    r->used += len;
    pthread_mutex_unlock(&r->mu);
}

size_t weir__tm_logring_tail(weir_tm_logring_t *r, size_t max, uint8_t **out) {
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    size_t n = max < r->used ? max : r->used;
    size_t skip = r->used - n;
    size_t first = (r->start + skip) % r->cap;
    bool at_line = skip == 0 ? r->head_at_line : r->buf[(first + r->cap - 1) % r->cap] == '\n';
    uint8_t *buf = n ? malloc(n) : NULL;
    if (n && !buf)
        abort();
    size_t a = n < r->cap - first ? n : r->cap - first;
    if (n) {
        memcpy(buf, r->buf + first, a);
        memcpy(buf + a, r->buf, n - a);
    }
    pthread_mutex_unlock(&r->mu);
    size_t from = 0;
    if (!at_line) { /* the first line lost its beginning: start after it */
        while (from < n && buf[from] != '\n')
            from++;
        from = from < n ? from + 1 : n;
    }
    if (from == n) {
        free(buf);
        return 0;
    }
    if (from)
        memmove(buf, buf + from, n - from);
    *out = buf;
    return n - from;
}

size_t weir__tm_logring_used(weir_tm_logring_t *r) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->used;
    pthread_mutex_unlock(&r->mu);
    return n;
}
