/* Test plugin: a valid tiny job. datagen(count = argv[1] or 100) -> map (x * 2) -> key_by ->
 * reduce (sum, uid "sum") -> print. Used by tests/unit/test_plugin.c. */
#include <stdlib.h>

#include "weir/weir.h"

static void double_it(weir_ctx_t *ctx, const weir_record_t *in, void *udata) {
    (void)udata;
    msgpack_object o;
    if (weir_unpack(ctx, in, &o) != 0)
        return;
    msgpack_pack_uint64(weir_packer(ctx), o.via.u64 * 2);
    weir_emit_packed(ctx, in->timestamp, in->key, in->key_len);
}

static void sum(const msgpack_object *acc, const msgpack_object *in, msgpack_packer *out,
                void *udata) {
    (void)udata;
    msgpack_pack_uint64(out, acc->via.u64 + in->via.u64);
}

static int define(weir_job_t *job, int argc, char **argv) {
    weir_datagen_opts_t opts = {.kind = WEIR_DATAGEN_SEQUENCE, .count = 100};
    if (argc > 1)
        opts.count = strtoull(argv[1], NULL, 10);
    weir_stream_t *s = weir_set_uid(weir_source_datagen(job, "numbers", &opts), "numbers");
    s = weir_map(s, "double", double_it, NULL);
    s = weir_reduce(weir_key_by(s, NULL, NULL), "sum", sum, NULL);
    weir_set_uid(s, "sum");
    weir_sink_print(s, "print");
    return 0;
}

WEIR_PLUGIN("good", "a valid tiny test job", define);
