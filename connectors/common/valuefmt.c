/* Value formatting for the file and print sinks (connectors/common/valuefmt.h): the non-str/bin
 * values, printed by msgpack-c.
 *
 * Owns: the formatter's text buffer and msgpack zone.
 * Invariants: the buffer starts at 4 KiB and doubles only when a text does not fit, up to 64 MiB
 * (longer texts are truncated); the zone is cleared per value, so once warm no value allocates.
 * Threading: a weir_value_fmt_t is used by one subtask thread only. */
#include "connectors/common/valuefmt.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

#define FMT_INITIAL 4096u
#define FMT_MAX (64u << 20)

int weir__value_fmt_init(weir_value_fmt_t *f) {
    memset(f, 0, sizeof(*f));
    f->buf = malloc(FMT_INITIAL);
    f->zone = msgpack_zone_new(8192);
    if (!f->buf || !f->zone) {
        weir__value_fmt_destroy(f);
        return WEIR_ENOMEM;
    }
    f->cap = FMT_INITIAL;
    return 0;
}

void weir__value_fmt_destroy(weir_value_fmt_t *f) {
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
    if (f->zone)
        msgpack_zone_free(f->zone);
    f->zone = NULL;
}

int weir__value_text_other(weir_value_fmt_t *f, const void *value, size_t value_len,
                           const char **text, size_t *text_len) {
    static const char invalid[] = "<invalid msgpack>";
    msgpack_object obj;
    size_t off = 0;
    msgpack_zone_clear(f->zone);
    msgpack_unpack_return ur = msgpack_unpack(value, value_len, &off, f->zone, &obj);
    if (ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) {
        *text = invalid;
        *text_len = sizeof(invalid) - 1;
        return 0;
    }
    for (;;) {
        /* msgpack-c returns 0 when the text does not fit (every object prints something). */
        int n = msgpack_object_print_buffer(f->buf, f->cap, obj);
        if (n > 0 && (size_t)n + 1 < f->cap) {
            *text = f->buf;
            *text_len = (size_t)n;
            return 0;
        }
        if (f->cap >= FMT_MAX) { /* give up growing: truncated text */
            *text = f->buf;
            *text_len = n > 0 ? (size_t)n : 0;
            return 0;
        }
        if (weir_array_grow((void **)&f->buf, &f->cap, f->cap + 1, 1, FMT_INITIAL) != 0)
            return WEIR_ENOMEM;
    }
}
