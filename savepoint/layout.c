/* The file locations of keyed-state handles (layout.h). Owns nothing; pure and thread-safe. */
#include "savepoint/layout.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

static bool plain_name(const char *s) {
    return s && s[0] && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

int weir_layout_keyed_file(const char *base, bool self_contained, uint64_t handle_checkpoint,
                           const char *task, bool shared, const char *name, char *out, size_t cap) {
    if (!base || !base[0] || !plain_name(task) || !plain_name(name))
        return WEIR_EINVAL;
    int n;
    if (self_contained)
        n = snprintf(out, cap, "%s/%s/%s", base, task, name);
    else if (shared)
        n = snprintf(out, cap, "%s/../shared/%s", base, name);
    else
        n = snprintf(out, cap, "%s/../chk-%" PRIu64 "/%s/%s", base, handle_checkpoint, task, name);
    return n < 0 || (size_t)n >= cap ? WEIR_EINVAL : 0;
}
