/* Option handling shared by the Kafka source and sink (kconf.h).
 * Owns nothing beyond the librdkafka conf objects it returns to the caller.
 * Invariants: every error is one line naming the connector, the operator and the option.
 * Threading: pure; any thread. */
#include "connectors/kafka/kconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

static bool in_list(const char *key, const char *const *list) {
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

/* "a, b, c" of a NULL-terminated list into @p out (cut at @p cap). */
static void join_names(const char *const *names, char *out, size_t cap) {
    size_t off = 0;
    out[0] = 0;
    for (size_t i = 0; names[i] && off < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? ", " : "", names[i]);
}

int weir__kconf_check_keys(const weir_node_t *n, const char *api, const char *const *known,
                           const char *const *required, char *errstr, size_t errlen) {
    size_t plen = strlen(WEIR_KCONF_PROPERTIES);
    for (uint32_t i = 0; i < n->n_options; i++) {
        const char *key = n->options[2 * i];
        if (strncmp(key, WEIR_KCONF_PROPERTIES, plen) == 0 && key[plen])
            continue;
        if (in_list(key, known))
            continue;
        char list[512];
        join_names(known, list, sizeof(list));
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': unknown option '%s': use one of %s, or "
                         "'" WEIR_KCONF_PROPERTIES "<librdkafka property>'",
                         api, n->name, key, list);
    }
    for (size_t r = 0; required && required[r]; r++) {
        const char *v = weir_node_option(n, required[r]);
        if (!v || !*v)
            return weir_errf(errstr, errlen, WEIR_EINVAL, "%s '%s': option '%s' is required", api,
                             n->name, required[r]);
    }
    return 0;
}

int weir__kconf_int(const weir_node_t *n, const char *api, const char *key, int64_t def,
                    int64_t min, int64_t max, int64_t *out, char *errstr, size_t errlen) {
    const char *v = weir_node_option(n, key);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < min || x > max)
        return weir_errf(errstr, errlen, WEIR_EINVAL,
                         "%s '%s': option '%s' is '%s': use an integer from %lld to %lld", api,
                         n->name, key, v, (long long)min, (long long)max);
    *out = x;
    return 0;
}

int weir__kconf_enum(const weir_node_t *n, const char *api, const char *key,
                     const char *const *names, int def, int *out, char *errstr, size_t errlen) {
    const char *v = weir_node_option(n, key);
    if (!v) {
        *out = def;
        return 0;
    }
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char list[256];
    join_names(names, list, sizeof(list));
    return weir_errf(errstr, errlen, WEIR_EINVAL, "%s '%s': option '%s' is '%s': use one of %s",
                     api, n->name, key, v, list);
}

int weir__kconf_set(rd_kafka_conf_t *conf, const char *api, const weir_node_t *n, const char *key,
                    const char *value, char *errstr, size_t errlen) {
    char rderr[256];
    if (rd_kafka_conf_set(conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK)
        return weir_errf(errstr, errlen, WEIR_EINVAL, "%s '%s': librdkafka property '%s': %s", api,
                         n->name, key, rderr);
    return 0;
}

rd_kafka_conf_t *weir__kconf_new(const weir_node_t *n, const char *api, const char *const *reserved,
                                 char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    size_t plen = strlen(WEIR_KCONF_PROPERTIES);
    const char *bootstrap = weir_node_option(n, "bootstrap.servers");
    if (bootstrap &&
        weir__kconf_set(conf, api, n, "bootstrap.servers", bootstrap, errstr, errlen) != 0)
        goto fail;
    for (uint32_t i = 0; i < n->n_options; i++) {
        const char *key = n->options[2 * i], *value = n->options[2 * i + 1];
        if (strncmp(key, WEIR_KCONF_PROPERTIES, plen) != 0 || !key[plen])
            continue;
        key += plen;
        if (in_list(key, reserved)) {
            weir_errf(errstr, errlen, WEIR_EINVAL,
                      "%s '%s': option '" WEIR_KCONF_PROPERTIES "%s' is set by the connector "
                      "itself: remove it (see docs/kafka.md for the connector's own options)",
                      api, n->name, key);
            goto fail;
        }
        if (weir__kconf_set(conf, api, n, key, value, errstr, errlen) != 0)
            goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
