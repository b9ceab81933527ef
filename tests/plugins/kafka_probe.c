/* Test plugin: a Kafka source with the options given on the command line, every record written
 * by the exactly-once file sink as one line "<key hex>|<value>|<timestamp>", where value is
 * "s:<text>" for a msgpack str, "b:<hex>" for a bin, "nil" for nil, and "j:" followed by
 * msgpack-c's text of anything else (msgpack_object_print_buffer). Used by
 * tests/integration/14_kafka_source_modes.py.
 *
 *   weir run kafka_probe.so --out DIR [-o KEY=VALUE]...   (each -o one source option)
 *
 * Threading: define() runs once per subtask; the map keeps no state. */
#include <stdio.h>
#include <string.h>

#include "weir/weir.h"

#define MAX_OPTS 32

static size_t hex(const void *p, size_t n, char *out, size_t cap) {
    static const char digits[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < cap; i++) {
        out[k++] = digits[((const unsigned char *)p)[i] >> 4];
        out[k++] = digits[((const unsigned char *)p)[i] & 15];
    }
    out[k] = 0;
    return k;
}

static void render(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) != 0)
        return;
    static char line[65536];
    size_t k = hex(in->key, in->key_len, line, sizeof(line) / 4);
    line[k++] = '|';
    if (o.type == MSGPACK_OBJECT_STR && o.via.str.size < sizeof(line) / 2) {
        memcpy(line + k, "s:", 2);
        memcpy(line + k + 2, o.via.str.ptr, o.via.str.size);
        k += 2 + o.via.str.size;
    } else if (o.type == MSGPACK_OBJECT_BIN) {
        memcpy(line + k, "b:", 2);
        k += 2 + hex(o.via.bin.ptr, o.via.bin.size, line + k + 2, sizeof(line) / 2);
    } else if (o.type == MSGPACK_OBJECT_NIL) {
        memcpy(line + k, "nil", 3);
        k += 3;
    } else {
        memcpy(line + k, "j:", 2);
        k += 2 + (size_t)msgpack_object_print_buffer(line + k + 2, sizeof(line) / 2, o);
    }
    k += (size_t)snprintf(line + k, sizeof(line) - k, "|%lld", (long long)in->timestamp);
    msgpack_packer *pk = weir_packer(ctx);
    msgpack_pack_str(pk, k);
    msgpack_pack_str_body(pk, line, k);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static int define(weir_job_t *job, int argc, char **argv) {
    const char *out = NULL;
    const char *opts[2 * MAX_OPTS + 1];
    int n = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--out") == 0) {
            out = argv[i + 1];
        } else if (strcmp(argv[i], "-o") == 0 && n < MAX_OPTS) {
            char *kv = weir_job_strdup(job, argv[i + 1]);
            char *eq = strchr(kv, '=');
            if (!eq) {
                weir_job_error(job, "-o %s: expected KEY=VALUE", argv[i + 1]);
                return 1;
            }
            *eq = 0;
            opts[2 * n] = kv;
            opts[2 * n + 1] = eq + 1;
            n++;
        } else {
            weir_job_error(job, "usage: kafka_probe.so --out DIR [-o KEY=VALUE]...");
            return 1;
        }
    }
    if (!out) {
        weir_job_error(job, "usage: kafka_probe.so --out DIR [-o KEY=VALUE]...");
        return 1;
    }
    opts[2 * n] = NULL;
    weir_stream_t *s = weir_set_uid(weir_source_kafka(job, "src", opts), "src");
    s = weir_map(s, "render", render, NULL);
    weir_set_uid(weir_sink_file(s, "sink", out), "sink");
    return 0;
}

WEIR_PLUGIN("kafka_probe", "a Kafka source with the given options into a file sink", define);
